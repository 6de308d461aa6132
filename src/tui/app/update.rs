//! `update(&mut Model, Msg) -> Vec<Effect>`: every behaviour of the app, without IO.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use ratatui_textarea::TextArea;

use crate::core::db::exec::QueryResult;
use crate::core::feedback::history::Rating;
use crate::core::pipeline;
use crate::core::pipeline::outcome::RunOutcome;
use crate::tui::app::conversation::schema_table_words;
use crate::tui::app::{
    Active, AttemptView, Effect, ExportFormat, HistoryState, Model, Msg, Overlay, Pane,
    PipelineUpdate, RECALL_LIST_ID, RunView, Stage, Startup, StartupEvent, UserSql, Warm,
    WorkerError, new_question_input,
};
use crate::tui::app::{grid, mouse, starters, training};
use crate::tui::keymap::{Command, Key, KeyContext};

/// Rows moved by PageUp/PageDown in the results table.
const PAGE_ROWS: usize = 10;

pub fn update(model: &mut Model, msg: Msg) -> Vec<Effect> {
    let idle_tick = matches!(msg, Msg::Tick(_)) && !model.busy();
    let effects = match msg {
        Msg::Key(key) => on_key(model, key),
        Msg::Paste(text) => {
            on_paste(model, &text);
            Vec::new()
        }
        Msg::Resized => Vec::new(),
        Msg::Mouse(input) => {
            mouse::on_mouse(model, input);
            Vec::new()
        }
        Msg::Signalled => {
            let mut effects = Vec::new();
            quit(model, &mut effects);
            effects
        }
        Msg::Tick(now) => {
            model.now_ms = now;
            Vec::new()
        }
        Msg::Startup(event) => {
            on_startup(model, event);
            Vec::new()
        }
        Msg::Pipeline { id, update } => on_pipeline(model, id, update),
        Msg::SqlRan {
            id,
            result,
            elapsed_ms,
        } => {
            on_sql_ran(model, id, result, elapsed_ms);
            Vec::new()
        }
        Msg::RunRecorded { id, run } => {
            match run {
                Ok(run) if model.run.request == id => {
                    model.run.run_id = Some(run);
                    model.conversation.recorded(&model.run.question, run);
                }
                Ok(_) => {}
                Err(error) => model.flash = Some(format!("could not save the run: {error}")),
            }
            Vec::new()
        }
        Msg::HistoryListed { id, entries } => {
            on_history_listed(model, id, entries);
            Vec::new()
        }
        Msg::RunLoaded { run, outcome } => match outcome {
            Ok(Some(outcome)) => open_outcome(model, run, *outcome),
            Ok(None) => {
                model.flash = Some(format!("run {run} is no longer in the history"));
                Vec::new()
            }
            Err(error) => {
                model.flash = Some(format!("could not open the run: {error}"));
                Vec::new()
            }
        },
        Msg::Stored(result) => {
            model.flash = Some(result.unwrap_or_else(|e| format!("not saved: {e}")));
            // A rating or correction may have made retraining due.
            if model.retrain_threshold > 0 {
                vec![Effect::CheckRetraining {
                    threshold: model.retrain_threshold,
                }]
            } else {
                Vec::new()
            }
        }
        Msg::RetrainingChecked(status) => {
            training::on_retraining_checked(model, status);
            Vec::new()
        }
        Msg::Training(progress) => {
            training::on_training_update(model, progress);
            Vec::new()
        }
        Msg::EditorClosed(result) => {
            match result {
                Ok(sql) => {
                    let sql = sql.trim().to_string();
                    if !sql.is_empty() {
                        model.run.user_sql = Some(UserSql { sql, ran: None });
                        model.focus = Pane::Sql;
                        model.flash = Some(hint(model, KeyContext::Sql, Command::RunSql, "run it"));
                    }
                }
                Err(error) => model.flash = Some(format!("editor failed: {error}")),
            }
            Vec::new()
        }
        Msg::Exported(result) => {
            model.flash = Some(match result {
                Ok(path) => format!("exported to {}", path.display()),
                Err(error) => format!("export failed: {error}"),
            });
            Vec::new()
        }
        Msg::Copied(result) => {
            model.flash = Some(match result {
                Ok(chars) => format!("copied {chars} characters to the clipboard"),
                Err(error) => format!("copy failed: {error}"),
            });
            Vec::new()
        }
    };
    if !idle_tick {
        model.dirty = true;
    }
    effects
}

fn on_key(model: &mut Model, event: KeyEvent) -> Vec<Effect> {
    let context = model.key_context();
    let key = Key::from_event(event);
    if let Some(command) = model.config.keymap.lookup(context, key)
        && let Some(effects) = run_command(model, context, command)
    {
        return effects;
    }
    type_text(model, context, event);
    Vec::new()
}

/// Keys no binding claimed: text for whichever input is active.
fn type_text(model: &mut Model, context: KeyContext, event: KeyEvent) {
    match context {
        KeyContext::Question => {
            model.question.input(event);
        }
        KeyContext::Editor => {
            if let Some(editor) = model.editor.as_mut() {
                editor.input(event);
            }
        }
        KeyContext::Note => {
            if let Overlay::Note { input } = &mut model.overlay {
                input.input(event);
            }
        }
        KeyContext::History => {
            if let Overlay::History(history) = &mut model.overlay {
                let mut filter = history.filter.clone();
                match event.code {
                    KeyCode::Char(c) if !event.modifiers.contains(KeyModifiers::CONTROL) => {
                        filter.push(c)
                    }
                    KeyCode::Backspace => {
                        filter.pop();
                    }
                    _ => return,
                }
                history.set_filter(filter);
            }
        }
        KeyContext::Schema | KeyContext::Sql | KeyContext::Results | KeyContext::Answer => {
            // Typing anywhere starts a question.
            if let KeyCode::Char(_) = event.code
                && !event
                    .modifiers
                    .intersects(KeyModifiers::CONTROL | KeyModifiers::ALT)
            {
                model.focus = Pane::Question;
                model.zoomed = false;
                model.question.input(event);
            }
        }
        KeyContext::Search => {
            let filter = &mut model.results.filter;
            match event.code {
                KeyCode::Char(c) if !event.modifiers.contains(KeyModifiers::CONTROL) => {
                    filter.push(c)
                }
                KeyCode::Backspace => {
                    filter.pop();
                }
                _ => return,
            }
            model.results.row = 0;
        }
        KeyContext::Global | KeyContext::Help => {}
    }
}

fn on_paste(model: &mut Model, text: &str) {
    match model.key_context() {
        KeyContext::Editor => {
            if let Some(editor) = model.editor.as_mut() {
                editor.insert_str(text);
            }
        }
        KeyContext::Note => {
            if let Overlay::Note { input } = &mut model.overlay {
                input.insert_str(text.replace('\n', " "));
            }
        }
        KeyContext::History => {
            if let Overlay::History(history) = &mut model.overlay {
                let filter = format!("{}{}", history.filter, text.replace('\n', " "));
                history.set_filter(filter);
            }
        }
        _ => {
            model.focus = Pane::Question;
            model.question.insert_str(text);
        }
    }
}

/// Runs a bound command. `None` lets the key fall through to text input (a recall key
/// inside a multi-line question moves the cursor instead).
fn run_command(model: &mut Model, context: KeyContext, command: Command) -> Option<Vec<Effect>> {
    let mut effects = Vec::new();
    match command {
        Command::Quit => quit(model, &mut effects),
        Command::Cancel => cancel(model, &mut effects),
        Command::Retrain => training::on_retrain_key(model, &mut effects),
        Command::FocusNext | Command::FocusPrev => cycle_focus(model, command),
        Command::FocusQuestion => model.focus = Pane::Question,
        Command::FocusSchema => model.focus = Pane::Schema,
        Command::FocusSql => model.focus = Pane::Sql,
        Command::FocusResults => model.focus = Pane::Results,
        Command::FocusAnswer => model.focus = Pane::Answer,
        Command::Zoom => model.zoomed = !model.zoomed,
        Command::OpenHistory => open_history(model, &mut effects),
        Command::Help => open_help(model),
        Command::Close => model.overlay = Overlay::None,
        Command::Ask => ask_typed_question(model, &mut effects),
        Command::NewTopic => {
            model.conversation = Default::default();
            model.flash = Some("new topic: the next question starts a new conversation".into());
        }
        Command::NewLine => model.question.insert_newline(),
        Command::Suggest => suggest(model),
        Command::RecallOlder | Command::RecallNewer => {
            if !recall_at_edge(model, command == Command::RecallOlder) {
                return None;
            }
        }
        Command::ScrollUp | Command::ScrollDown => scroll(model, context, command),
        Command::EditSql => open_inline_editor(model),
        Command::EditSqlExternal => {
            let sql = model.run.current_sql().unwrap_or_default().to_string();
            effects.push(Effect::OpenEditor { sql });
        }
        Command::CloseEditor => close_editor(model),
        Command::RunSql => run_sql(model, &mut effects),
        Command::MarkCorrect => mark_correct(model, &mut effects),
        Command::Copy => copy(model, context, &mut effects),
        Command::CopyRow => copy_row(model, &mut effects),
        Command::ThumbsUp => thumbs_up(model, &mut effects),
        Command::ThumbsDown => open_note(model),
        Command::SubmitNote => submit_note(model, &mut effects),
        Command::RowUp | Command::RowDown if context == KeyContext::History => {
            if let Overlay::History(history) = &mut model.overlay {
                history.move_selection(command == Command::RowDown);
            }
        }
        Command::RowUp
        | Command::RowDown
        | Command::ColumnLeft
        | Command::ColumnRight
        | Command::PageUp
        | Command::PageDown
        | Command::FirstRow
        | Command::LastRow => move_cursor(model, command),
        Command::ToggleChart => toggle_chart(model),
        Command::Sort => model.results.cycle_sort(),
        Command::Search => model.results.searching = true,
        Command::EndSearch => model.results.searching = false,
        Command::ClearSearch => {
            model.results.searching = false;
            model.results.filter.clear();
        }
        Command::ShowCell => show_cell(model),
        Command::LoadMore => load_more(model, &mut effects),
        Command::ChartValue => model.results.chart_value = Some(model.results.column),
        Command::ChartLabel => model.results.chart_label = Some(model.results.column),
        Command::ChartKind => {
            model.results.chart_kind = match model.results.chart_kind {
                grid::ChartKind::Bar => grid::ChartKind::Line,
                grid::ChartKind::Line => grid::ChartKind::Bar,
            }
        }
        Command::ExportCsv | Command::ExportJson => export(model, command, &mut effects),
        Command::OpenRun | Command::Rerun => history_action(model, command, &mut effects),
    }
    Some(effects)
}

fn quit(model: &mut Model, effects: &mut Vec<Effect>) {
    model.quit = true;
    cancel_active(model, effects);
    effects.push(Effect::Quit);
}

/// Steps back one level: out of a retrain confirmation, else stops the running request,
/// else leaves the zoom.
fn cancel(model: &mut Model, effects: &mut Vec<Effect>) {
    if !training::cancel_confirmation(model) && !cancel_active(model, effects) {
        model.zoomed = false;
    }
}

fn cycle_focus(model: &mut Model, command: Command) {
    let index = Pane::ORDER
        .iter()
        .position(|p| *p == model.focus)
        .unwrap_or(0);
    // Stepping four panes forward is one step back around the five.
    let step = if command == Command::FocusNext { 1 } else { 4 };
    model.focus = Pane::ORDER[(index + step) % 5];
}

fn open_history(model: &mut Model, effects: &mut Vec<Effect>) {
    let id = next_id(model);
    model.overlay = Overlay::History(HistoryState::new(id));
    effects.push(Effect::ListHistory { id });
}

fn open_help(model: &mut Model) {
    model.scrolls.help = 0;
    model.overlay = Overlay::Help;
}

fn ask_typed_question(model: &mut Model, effects: &mut Vec<Effect>) {
    let question = model.question_text().trim().to_string();
    if question.is_empty() {
        model.flash = Some("type a question first".into());
    } else {
        ask(model, question, effects);
    }
}

/// Recalls a question only from the question's first line (older) or last line (newer);
/// elsewhere the key is left to move the cursor, and this returns false.
fn recall_at_edge(model: &mut Model, older: bool) -> bool {
    let row = model.question.cursor().0;
    let at_edge = if older {
        row == 0
    } else {
        row + 1 >= model.question.lines().len()
    };
    if at_edge {
        recall(model, older);
    }
    at_edge
}

/// Puts the next starter question in the input (replacing what is there).
fn suggest(model: &mut Model) {
    if model.starters.is_empty() {
        model.flash = Some("no suggestions for this database".into());
        return;
    }
    let question = model.starters[model.next_starter % model.starters.len()].clone();
    model.next_starter += 1;
    let mut input = new_question_input();
    input.insert_str(question);
    model.question = input;
    model.focus = Pane::Question;
}

fn open_inline_editor(model: &mut Model) {
    let sql = model.run.current_sql().unwrap_or_default().to_string();
    let mut editor = TextArea::new(sql.lines().map(str::to_string).collect());
    editor.set_line_number_style(ratatui::style::Style::default());
    editor.set_wrap_mode(ratatui_textarea::WrapMode::WordOrGlyph);
    model.editor = Some(editor);
    model.focus = Pane::Sql;
}

fn copy_row(model: &Model, effects: &mut Vec<Effect>) {
    if let Some(row) = model.selected_row() {
        let text: Vec<String> = row.iter().map(ToString::to_string).collect();
        effects.push(Effect::Copy(text.join("\t")));
    }
}

fn thumbs_up(model: &mut Model, effects: &mut Vec<Effect>) {
    if let Some(run) = rateable(model) {
        model.run.rating = Some(Rating::Up);
        effects.push(Effect::Rate {
            run,
            rating: Rating::Up,
            note: None,
        });
    }
}

/// A thumbs-down asks what was wrong first; [`submit_note`] records the rating.
fn open_note(model: &mut Model) {
    if rateable(model).is_some() {
        let mut input = TextArea::default();
        input.set_placeholder_text("What was wrong? (optional) Enter saves");
        input.set_cursor_line_style(ratatui::style::Style::default());
        model.overlay = Overlay::Note {
            input: Box::new(input),
        };
    }
}

fn submit_note(model: &mut Model, effects: &mut Vec<Effect>) {
    if let Overlay::Note { input } = &model.overlay {
        let note = input.lines().join(" ").trim().to_string();
        if let Some(run) = model.run.run_id {
            model.run.rating = Some(Rating::Down);
            effects.push(Effect::Rate {
                run,
                rating: Rating::Down,
                note: (!note.is_empty()).then_some(note),
            });
        }
    }
    model.overlay = Overlay::None;
}

/// Rows a "load more" asks for, as a multiple of what the result holds.
const LOAD_MORE_FACTOR: usize = 10;

fn show_cell(model: &mut Model) {
    let column = model
        .run
        .result
        .as_ref()
        .and_then(|r| r.columns.get(model.results.column))
        .cloned()
        .unwrap_or_default();
    match model.selected_cell().map(ToString::to_string) {
        Some(text) => {
            model.scrolls.help = 0;
            model.overlay = Overlay::Cell { column, text };
        }
        None => model.flash = Some("no cell selected".into()),
    }
}

/// Runs the shown SQL again with a higher row cap; the sort and search stay.
fn load_more(model: &mut Model, effects: &mut Vec<Effect>) {
    let Some(result) = &model.run.result else {
        model.flash = Some("no results yet".into());
        return;
    };
    if !grid::can_load_more(result) {
        model.flash = Some(format!("all {} rows are shown", result.rows.len()));
        return;
    }
    let Some(sql) = model
        .run
        .verified_sql()
        .or_else(|| model.run.current_sql())
        .map(str::to_string)
    else {
        return;
    };
    if model.stage.is_busy() {
        model.flash = Some("wait for the running request, or esc to stop it".into());
        return;
    }
    let row_limit = result.rows.len().max(1) * LOAD_MORE_FACTOR;
    let id = next_id(model);
    model.active = Some(Active::More(id));
    model.flash = Some(format!("loading up to {row_limit} rows"));
    set_stage(model, Stage::RunningSql);
    effects.push(Effect::LoadMore { id, sql, row_limit });
}

fn toggle_chart(model: &mut Model) {
    let chartable = model
        .run
        .result
        .as_ref()
        .and_then(|r| grid::chart_columns(r, &model.results))
        .is_some();
    // Switching back to the table always works, even when the result cannot be charted.
    if chartable || model.results.chart {
        model.results.chart = !model.results.chart;
    } else {
        model.flash = Some("a chart needs a label column and a numeric column".into());
    }
}

fn export(model: &mut Model, command: Command, effects: &mut Vec<Effect>) {
    let format = if command == Command::ExportCsv {
        ExportFormat::Csv
    } else {
        ExportFormat::Json
    };
    match &model.run.result {
        Some(result) => effects.push(Effect::Export {
            format,
            result: Box::new(result.clone()),
            name: model.run.question.clone(),
        }),
        None => model.flash = Some("no results to export".into()),
    }
}

fn history_action(model: &mut Model, command: Command, effects: &mut Vec<Effect>) {
    let Overlay::History(history) = &model.overlay else {
        return;
    };
    let Some(entry) = history.selected_entry().cloned() else {
        return;
    };
    match command {
        Command::OpenRun => {
            model.overlay = Overlay::None;
            effects.push(Effect::LoadRun { run: entry.id });
        }
        Command::Rerun => {
            model.overlay = Overlay::None;
            model.conversation = Default::default();
            ask(model, entry.question, effects);
        }
        _ => {
            if let Some(sql) = entry.sql {
                effects.push(Effect::Copy(sql));
            }
        }
    }
}

fn next_id(model: &mut Model) -> u64 {
    let id = model.next_id;
    model.next_id += 1;
    id
}

fn set_stage(model: &mut Model, stage: Stage) {
    if model.stage != stage {
        model.stage = stage;
        model.stage_since_ms = model.now_ms;
    }
}

/// Cancels the running request, if any; returns whether there was one.
fn cancel_active(model: &mut Model, effects: &mut Vec<Effect>) -> bool {
    match model.active.take() {
        Some(Active::Ask(id)) => effects.push(Effect::CancelAsk { id }),
        Some(Active::Sql(id) | Active::More(id)) => effects.push(Effect::CancelSql { id }),
        None => return false,
    }
    set_stage(model, Stage::Cancelled);
    true
}

fn ask(model: &mut Model, question: String, effects: &mut Vec<Effect>) {
    cancel_active(model, effects);
    let id = next_id(model);
    model.recall.remember(&question);
    let (earlier, parent) = model
        .conversation
        .continue_with(&question, &model.table_words);
    model.run = RunView {
        request: id,
        question: question.clone(),
        earlier: earlier.clone(),
        parent,
        ..RunView::default()
    };
    model.results = Default::default();
    model.scrolls.sql = 0;
    model.scrolls.answer = 0;
    model.editor = None;
    model.question = new_question_input();
    model.active = Some(Active::Ask(id));
    model.flash = None;
    set_stage(model, Stage::Retrieving);
    effects.push(Effect::Ask {
        id,
        question,
        earlier,
    });
}

fn recall(model: &mut Model, older: bool) {
    let recall = &mut model.recall;
    if recall.questions.is_empty() {
        return;
    }
    let next = match (recall.index, older) {
        (None, true) => {
            recall.draft = model.question.lines().join("\n");
            Some(recall.questions.len() - 1)
        }
        (None, false) => return,
        (Some(i), true) => Some(i.saturating_sub(1)),
        (Some(i), false) if i + 1 < recall.questions.len() => Some(i + 1),
        (Some(_), false) => None,
    };
    recall.index = next;
    let text = match next {
        Some(i) => recall.questions[i].clone(),
        None => std::mem::take(&mut recall.draft),
    };
    let mut input = new_question_input();
    input.insert_str(text);
    model.question = input;
}

fn scroll(model: &mut Model, context: KeyContext, command: Command) {
    let slot = match context {
        KeyContext::Schema => &mut model.scrolls.schema,
        KeyContext::Sql => &mut model.scrolls.sql,
        KeyContext::Answer => &mut model.scrolls.answer,
        KeyContext::Help => &mut model.scrolls.help,
        _ => return,
    };
    // The SQL pane follows its newest line; its offset counts lines back from the end.
    let up = (command == Command::ScrollUp) != (context == KeyContext::Sql);
    *slot = if up {
        slot.saturating_sub(1)
    } else {
        slot.saturating_add(1)
    };
}

fn close_editor(model: &mut Model) {
    if let Some(editor) = model.editor.take() {
        let sql = editor.lines().join("\n").trim().to_string();
        let unchanged = model.run.current_sql() == Some(sql.as_str());
        if !sql.is_empty() && !unchanged {
            model.run.user_sql = Some(UserSql { sql, ran: None });
        }
    }
}

fn run_sql(model: &mut Model, effects: &mut Vec<Effect>) {
    if matches!(model.active, Some(Active::Ask(_))) {
        model.flash = Some("a question is running; Esc cancels it".into());
        return;
    }
    if model.editor.is_some() {
        let sql = model
            .editor
            .take()
            .map(|e| e.lines().join("\n").trim().to_string())
            .unwrap_or_default();
        if !sql.is_empty() {
            model.run.user_sql = Some(UserSql { sql, ran: None });
        }
    }
    let Some(sql) = model.run.current_sql().map(str::to_string) else {
        model.flash = Some("there is no SQL to run".into());
        return;
    };
    cancel_active(model, effects);
    let id = next_id(model);
    model.run.user_sql = Some(UserSql {
        sql: sql.clone(),
        ran: None,
    });
    // The answer was written for the model's result and the mark was for other SQL.
    model.run.answer.clear();
    model.run.corrected = false;
    model.active = Some(Active::Sql(id));
    set_stage(model, Stage::RunningSql);
    effects.push(Effect::RunSql { id, sql });
}

fn on_sql_ran(
    model: &mut Model,
    id: u64,
    result: Result<QueryResult, WorkerError>,
    elapsed_ms: u64,
) {
    if model.active == Some(Active::More(id)) {
        model.active = None;
        match result {
            Ok(result) => {
                model.flash = Some(format!("loaded {}", result.row_summary()));
                model.run.result = Some(result);
                set_stage(model, Stage::Done);
            }
            Err(error) => {
                model.flash = Some(format!("could not load more rows: {error}"));
                set_stage(model, Stage::Done);
            }
        }
        return;
    }
    if model.active != Some(Active::Sql(id)) {
        return;
    }
    model.active = None;
    model.run.user_sql_ms = Some(elapsed_ms);
    let ran = match result {
        Ok(result) => {
            model.run.result = Some(result);
            model.results = Default::default();
            set_stage(model, Stage::Done);
            Ok(())
        }
        Err(error) => {
            set_stage(model, Stage::Failed(error.to_string()));
            Err(error.to_string())
        }
    };
    if let Some(user) = model.run.user_sql.as_mut() {
        user.ran = Some(ran);
    }
}

fn mark_correct(model: &mut Model, effects: &mut Vec<Effect>) {
    let Some(run) = model.run.run_id else {
        model.flash = Some("only a finished, saved run can be corrected".into());
        return;
    };
    let Some(sql) = model.run.verified_sql().map(str::to_string) else {
        model.flash = Some(hint(
            model,
            KeyContext::Sql,
            Command::RunSql,
            "run the SQL first",
        ));
        return;
    };
    model.run.corrected = true;
    model.conversation.corrected(&model.run.question, &sql);
    effects.push(Effect::Correct { run, sql });
}

fn rateable(model: &mut Model) -> Option<i64> {
    if model.run.run_id.is_none() {
        model.flash = Some("only a finished, saved run can be rated".into());
    }
    model.run.run_id
}

fn copy(model: &mut Model, context: KeyContext, effects: &mut Vec<Effect>) {
    let text = match context {
        KeyContext::History => {
            history_action(model, Command::Copy, effects);
            return;
        }
        KeyContext::Results => model.selected_cell().map(ToString::to_string),
        KeyContext::Answer => Some(model.run.answer.trim().to_string()),
        KeyContext::Schema => Some(model.schema_text.clone()),
        _ => model.run.current_sql().map(str::to_string),
    };
    match text.filter(|t| !t.is_empty()) {
        Some(text) => effects.push(Effect::Copy(text)),
        None => model.flash = Some("nothing to copy".into()),
    }
}

fn move_cursor(model: &mut Model, command: Command) {
    let Some(result) = &model.run.result else {
        return;
    };
    let rows = grid::shown_rows(result, &model.results).len();
    let columns = result.columns.len();
    let state = &mut model.results;
    let last_row = rows.saturating_sub(1);
    match command {
        Command::RowUp => state.row = state.row.saturating_sub(1),
        Command::RowDown => state.row = (state.row + 1).min(last_row),
        Command::PageUp => state.row = state.row.saturating_sub(PAGE_ROWS),
        Command::PageDown => state.row = (state.row + PAGE_ROWS).min(last_row),
        Command::FirstRow => state.row = 0,
        Command::LastRow => state.row = last_row,
        Command::ColumnLeft => state.column = state.column.saturating_sub(1),
        Command::ColumnRight => state.column = (state.column + 1).min(columns.saturating_sub(1)),
        _ => {}
    }
}

fn hint(model: &Model, context: KeyContext, command: Command, what: &str) -> String {
    match model.config.keymap.key_for(context, command) {
        Some(key) => format!("{what}: press {key}"),
        None => what.to_string(),
    }
}

fn on_startup(model: &mut Model, event: StartupEvent) {
    match event {
        StartupEvent::SchemaRead {
            schema_text,
            tables,
        } => {
            model.table_words = schema_table_words(&schema_text);
            model.starters = starters::starter_questions(&schema_text);
            model.schema_text = schema_text;
            model.schema_tables = tables;
        }
        StartupEvent::Phase(phase) => model.startup = Startup::Loading { phase },
        StartupEvent::ModelReady { model: name } => model.startup = Startup::Ready { model: name },
        StartupEvent::Warming => {
            model.warm = Warm::Running {
                since_ms: model.now_ms,
            }
        }
        StartupEvent::Warmed {
            elapsed_ms,
            stopped,
        } => {
            model.warm = Warm::Finished {
                elapsed_ms,
                stopped,
            }
        }
        StartupEvent::Failed(error) => {
            model.startup = Startup::Failed(error.to_string());
            if let Some(Active::Ask(_)) = model.active {
                model.active = None;
                set_stage(model, Stage::Failed(error.to_string()));
            }
        }
    }
}

fn on_history_listed(
    model: &mut Model,
    id: u64,
    entries: Result<Vec<crate::core::feedback::history::HistoryEntry>, WorkerError>,
) {
    if id == RECALL_LIST_ID {
        if let Ok(entries) = entries {
            // Newest first from the store; recall wants oldest first.
            for entry in entries.iter().rev() {
                model.recall.remember(&entry.question);
            }
        }
        return;
    }
    if let Overlay::History(history) = &mut model.overlay
        && history.request == id
    {
        match entries {
            Ok(entries) => history.set_entries(entries),
            Err(error) => {
                history.loading = false;
                history.error = Some(error.to_string());
            }
        }
    }
}

fn on_pipeline(model: &mut Model, id: u64, update: PipelineUpdate) -> Vec<Effect> {
    if model.active != Some(Active::Ask(id)) {
        return Vec::new();
    }
    let run = &mut model.run;
    match update {
        PipelineUpdate::Stage(stage) => {
            let stage = match stage {
                pipeline::Stage::Retrieving => Stage::Retrieving,
                pipeline::Stage::Generating(attempt) => {
                    ensure_attempt(run, attempt);
                    Stage::Generating
                }
                pipeline::Stage::Repairing(attempt) => {
                    ensure_attempt(run, attempt);
                    Stage::Repairing {
                        repair: attempt.saturating_sub(1),
                        of: model.max_repairs,
                    }
                }
                pipeline::Stage::Executing(attempt) => Stage::Executing { attempt },
                pipeline::Stage::Answering => Stage::Answering,
            };
            set_stage(model, stage);
        }
        PipelineUpdate::Context(context) => run.context = Some(context),
        PipelineUpdate::SqlText { attempt, text } => {
            ensure_attempt(run, attempt);
            if let Some(view) = run.attempts.get_mut(attempt as usize - 1) {
                view.sql.push_str(&text);
            }
        }
        PipelineUpdate::SqlRestarted { attempt } => {
            if let Some(view) = run.attempts.get_mut((attempt as usize).saturating_sub(1)) {
                view.sql.clear();
            }
        }
        PipelineUpdate::AttemptFailed {
            attempt,
            sql,
            error,
        } => {
            ensure_attempt(run, attempt);
            if let Some(view) = run.attempts.get_mut(attempt as usize - 1) {
                *view = AttemptView {
                    sql,
                    error: Some(error),
                };
            }
        }
        PipelineUpdate::Executed(result) => {
            run.result = Some(result);
            model.results = Default::default();
        }
        PipelineUpdate::AnswerText(text) => run.answer.push_str(&text),
        PipelineUpdate::Finished(Ok(outcome)) => {
            model.active = None;
            return finish(model, id, *outcome);
        }
        PipelineUpdate::Finished(Err(error)) => {
            model.active = None;
            model.run.error = Some(error.to_string());
            set_stage(model, Stage::Failed(error.to_string()));
        }
    }
    Vec::new()
}

fn ensure_attempt(run: &mut RunView, attempt: u32) {
    while run.attempts.len() < attempt.max(1) as usize {
        run.attempts.push(AttemptView::default());
    }
}

fn finish(model: &mut Model, id: u64, outcome: RunOutcome) -> Vec<Effect> {
    show_outcome(&mut model.run, &outcome);
    let stage = match &outcome.error {
        Some(error) => Stage::Failed(error.clone()),
        None => Stage::Done,
    };
    set_stage(model, stage);
    if outcome.error.is_none()
        && let Some(sql) = &outcome.sql
    {
        model.conversation.answered(&outcome.question, sql);
    }
    vec![Effect::RecordRun {
        id,
        outcome: Box::new(outcome),
        parent: model.run.parent,
    }]
}

/// Makes the view match a finished outcome (the authoritative record of the run).
fn show_outcome(run: &mut RunView, outcome: &RunOutcome) {
    run.question = outcome.question.clone();
    run.attempts = outcome
        .attempts
        .iter()
        .map(|a| AttemptView {
            sql: a.sql.clone(),
            error: a.error.clone(),
        })
        .collect();
    if outcome.result.is_some() {
        run.result = outcome.result.clone();
    }
    if let Some(answer) = &outcome.answer {
        run.answer = answer.clone();
    }
    run.timings = Some(outcome.timings.clone());
    run.error = outcome.error.clone();
    run.confidence = outcome.confidence.clone();
}

/// Shows a run from the history; a question still running is cancelled first.
fn open_outcome(model: &mut Model, run_id: i64, outcome: RunOutcome) -> Vec<Effect> {
    let mut effects = Vec::new();
    cancel_active(model, &mut effects);
    let id = next_id(model);
    let mut view = RunView {
        request: id,
        run_id: Some(run_id),
        ..RunView::default()
    };
    show_outcome(&mut view, &outcome);
    let last_sql = view.attempts.last().map(|a| a.sql.trim().to_string());
    if let Some(sql) = &outcome.sql
        && last_sql.as_deref() != Some(sql.trim())
    {
        // The store returned its correction: show it as the user's verified SQL.
        view.user_sql = Some(UserSql {
            sql: sql.clone(),
            ran: None,
        });
        view.corrected = true;
    }
    let sql = outcome
        .error
        .is_none()
        .then(|| view.current_sql().map(str::to_string))
        .flatten();
    model
        .conversation
        .reopen(run_id, &view.question, sql.as_deref());
    model.run = view;
    model.results = Default::default();
    model.editor = None;
    let stage = match &outcome.error {
        Some(error) => Stage::Failed(error.clone()),
        None => Stage::Done,
    };
    set_stage(model, stage);
    effects
}
