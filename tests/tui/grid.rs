//! The results grid on a 1,000-row result (scripted, pure `update` plus rendered frames):
//! sort cycling, search, the full-cell view, per-column number formats, headers never cut,
//! "load more" past the row cap, the chart's columns and kinds, and starter questions.

use crossterm::event::KeyCode;
use nano_analyst::core::db::exec::{Cell, Cut, QueryResult};
use nano_analyst::tui::app::{
    ChartKind, Effect, Model, Msg, Overlay, PipelineUpdate, SortOrder, Stage,
};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use super::fixtures::*;

fn screen(model: &Model) -> String {
    let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
    terminal
        .draw(|frame| nano_analyst::tui::view::view(model, frame))
        .unwrap();
    terminal.backend().to_string()
}

/// 1,000 tracks: id, a name (one of them very long), a price with two decimals.
fn thousand_rows(cut: Option<Cut>) -> QueryResult {
    QueryResult {
        columns: vec![
            "TrackId".into(),
            "Name".into(),
            "UnitPriceInUSDollars".into(),
        ],
        rows: (0..1000)
            .map(|i| {
                let name = if i == 500 {
                    format!("The long one {}", "la ".repeat(40))
                } else {
                    format!("Track {i:04}")
                };
                vec![
                    Cell::Integer(i + 1),
                    Cell::Text(name),
                    Cell::Real(if i % 2 == 0 { 0.99 } else { 1990.5 }),
                ]
            })
            .collect(),
        total_rows: Some(if cut.is_some() { 3503 } else { 1000 }),
        cut,
    }
}

fn model_with(result: QueryResult) -> Model {
    let mut model = ready_model();
    let id = ask(&mut model, "All the tracks with their price");
    let mut done = outcome("All the tracks with their price");
    done.result = Some(result);
    send(
        &mut model,
        [
            pipeline(id, PipelineUpdate::Finished(Ok(Box::new(done)))),
            Msg::RunRecorded { id, run: Ok(9) },
            alt('4'),
        ],
    );
    model
}

#[test]
fn sort_cycles_on_the_selected_column_over_a_thousand_rows() {
    let mut model = model_with(thousand_rows(None));
    send(&mut model, [key(KeyCode::Char('s'))]);
    assert_eq!(model.results.sort, Some((0, SortOrder::Ascending)));
    send(&mut model, [key(KeyCode::Char('s'))]);
    assert_eq!(model.results.sort, Some((0, SortOrder::Descending)));
    let text = screen(&model);
    assert!(text.contains("TrackId ▼"), "{text}");
    assert_eq!(model.selected_row().unwrap()[0], Cell::Integer(1000));
    send(&mut model, [key(KeyCode::Char('s'))]);
    assert_eq!(model.results.sort, None);
    assert_eq!(model.selected_row().unwrap()[0], Cell::Integer(1));
    // Another column: by price, ties keep the query's order.
    send(
        &mut model,
        [
            key(KeyCode::Right),
            key(KeyCode::Right),
            key(KeyCode::Char('s')),
            key(KeyCode::Char('s')),
        ],
    );
    assert_eq!(model.selected_row().unwrap()[0], Cell::Integer(2));
}

#[test]
fn search_keeps_matching_rows_and_esc_clears_it() {
    let mut model = model_with(thousand_rows(None));
    send(&mut model, [key(KeyCode::Char('/'))]);
    type_text(&mut model, "track 09");
    let text = screen(&model);
    assert!(text.contains("/track 09"), "{text}");
    assert!(text.contains("100 matching"), "{text}");
    assert!(text.contains("row 1/100"), "{text}");
    // Enter keeps the search and gives the keys back to the grid.
    send(&mut model, [key(KeyCode::Enter), key(KeyCode::Char('G'))]);
    assert_eq!(model.results.filter, "track 09");
    assert_eq!(model.selected_row().unwrap()[0], Cell::Integer(1000));
    send(&mut model, [key(KeyCode::Char('/')), key(KeyCode::Esc)]);
    assert!(model.results.filter.is_empty());
    assert!(!model.results.searching);
}

#[test]
fn enter_shows_a_cut_cell_in_full() {
    let mut model = model_with(thousand_rows(None));
    send(&mut model, [key(KeyCode::Char('/'))]);
    type_text(&mut model, "long one");
    send(&mut model, [key(KeyCode::Enter), key(KeyCode::Right)]);
    let grid = screen(&model);
    assert!(
        !grid.contains("la la la la la la la la la la la la la la la"),
        "cut in the grid"
    );
    send(&mut model, [key(KeyCode::Enter)]);
    let Overlay::Cell { column, text } = &model.overlay else {
        panic!("no cell view");
    };
    assert_eq!(column, "Name");
    assert!(text.ends_with("la la "), "{text:?}");
    let shown = screen(&model);
    assert!(shown.contains("Name · 133 chars"), "{shown}");
    assert!(
        shown.contains("la la la la la la la la la la la la la la la"),
        "{shown}"
    );
    send(&mut model, [key(KeyCode::Esc)]);
    assert!(matches!(model.overlay, Overlay::None));
}

#[test]
fn numbers_share_decimals_per_column_and_headers_are_never_cut() {
    let model = model_with(thousand_rows(None));
    let text = screen(&model);
    assert!(text.contains("UnitPriceInUSDollars"), "{text}");
    assert!(text.contains("1990.50"), "{text}");
    assert!(text.contains("0.99"), "{text}");
    let mut grouped = model_with(thousand_rows(None));
    grouped.config.thousands_separators = true;
    assert!(screen(&grouped).contains("1,990.50"));
}

#[test]
fn load_more_reruns_the_sql_with_a_higher_cap_and_keeps_the_sort() {
    let mut model = model_with(thousand_rows(Some(Cut::RowLimit)));
    assert!(screen(&model).contains("L load more"));
    send(
        &mut model,
        [key(KeyCode::Char('s')), key(KeyCode::Char('s'))],
    );
    let effects = send(&mut model, [key(KeyCode::Char('L'))]);
    let id = match effects.as_slice() {
        [Effect::LoadMore { id, sql, row_limit }] => {
            assert_eq!(sql, GOOD_SQL);
            assert_eq!(*row_limit, 10_000);
            *id
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(model.stage, Stage::RunningSql);
    let mut more = thousand_rows(None);
    more.rows.extend(thousand_rows(None).rows);
    more.total_rows = Some(2000);
    send(
        &mut model,
        [Msg::SqlRan {
            id,
            result: Ok(more),
            elapsed_ms: 5,
        }],
    );
    assert_eq!(model.stage, Stage::Done);
    assert_eq!(model.run.result.as_ref().unwrap().rows.len(), 2000);
    assert_eq!(model.results.sort, Some((0, SortOrder::Descending)));
    assert!(model.run.user_sql.is_none(), "still the model's SQL");
    let effects = send(&mut model, [key(KeyCode::Char('L'))]);
    assert!(effects.is_empty());
    assert_eq!(model.flash.as_deref(), Some("all 2000 rows are shown"));
}

#[test]
fn the_chart_uses_the_chosen_columns_and_draws_a_line_over_dates() {
    let mut model = ready_model();
    let id = ask(&mut model, "Sales per day");
    let mut done = outcome("Sales per day");
    done.result = Some(QueryResult {
        columns: vec!["day".into(), "orders".into(), "total".into()],
        rows: (1..=9)
            .map(|d| {
                vec![
                    Cell::Text(format!("2013-01-0{d}")),
                    Cell::Integer(d),
                    Cell::Real(d as f64 * 1.5),
                ]
            })
            .collect(),
        total_rows: Some(9),
        cut: None,
    });
    send(
        &mut model,
        [
            pipeline(id, PipelineUpdate::Finished(Ok(Box::new(done)))),
            alt('4'),
            key(KeyCode::Right),
            key(KeyCode::Char('v')),
            key(KeyCode::Char('c')),
        ],
    );
    assert!(model.results.chart);
    assert_eq!(model.results.chart_value, Some(1));
    send(&mut model, [key(KeyCode::Char('t'))]);
    assert_eq!(model.results.chart_kind, ChartKind::Line);
    let text = screen(&model);
    assert!(text.contains("day (time)"), "{text}");
    assert!(text.contains("2013-01-01"), "{text}");
}

#[test]
fn starter_questions_are_offered_on_an_empty_screen() {
    let mut model = model();
    send(
        &mut model,
        [
            Msg::Startup(nano_analyst::tui::app::StartupEvent::SchemaRead {
                schema_text: "CREATE TABLE Genre (\n  GenreId INTEGER PRIMARY KEY\n)\n\
                              CREATE TABLE Track (\n  TrackId INTEGER PRIMARY KEY,\n  \
                              GenreId INTEGER REFERENCES Genre(GenreId)\n)\n"
                    .into(),
                tables: 2,
            }),
            Msg::Startup(nano_analyst::tui::app::StartupEvent::ModelReady { model: "m".into() }),
        ],
    );
    let text = screen(&model);
    assert!(
        text.contains("How many tracks are there per genre?"),
        "{text}"
    );
    send(&mut model, [ctrl('g')]);
    assert_eq!(model.question_text(), "How many genres are there?");
    send(&mut model, [ctrl('g')]);
    assert_eq!(
        model.question_text(),
        "How many tracks are there per genre?"
    );
}
