//! The mouse (with `mouse = true`): the wheel scrolls the pane under the pointer, a click
//! focuses it. Neither ever types: the wheel over the question does not recall history
//! into it.

use crate::tui::app::grid::shown_rows;
use crate::tui::app::{Model, MouseAction, MouseInput, Overlay, Pane};
use crate::tui::view::pane_at;

/// Rows the wheel moves per notch in the results.
const WHEEL_ROWS: usize = 1;

pub(super) fn on_mouse(model: &mut Model, input: MouseInput) {
    let down = input.action == MouseAction::ScrollDown;
    match &mut model.overlay {
        Overlay::Help | Overlay::Cell { .. } => {
            if input.action != MouseAction::Click {
                model.scrolls.help = step(model.scrolls.help, down);
            }
            return;
        }
        Overlay::History(history) => {
            if input.action != MouseAction::Click {
                history.move_selection(down);
            }
            return;
        }
        Overlay::Note { .. } => return,
        Overlay::None => {}
    }
    let Some(pane) = pane_at(model, input.width, input.height, input.column, input.row) else {
        return;
    };
    match input.action {
        MouseAction::Click => model.focus = pane,
        MouseAction::ScrollUp | MouseAction::ScrollDown => scroll(model, pane, down),
    }
}

fn scroll(model: &mut Model, pane: Pane, down: bool) {
    match pane {
        // Never recalls an older question over what is typed.
        Pane::Question => {}
        Pane::Schema => model.scrolls.schema = step(model.scrolls.schema, down),
        // The SQL pane counts lines back from its newest one.
        Pane::Sql => model.scrolls.sql = step(model.scrolls.sql, !down),
        Pane::Answer => model.scrolls.answer = step(model.scrolls.answer, down),
        Pane::Results => {
            let rows = model
                .run
                .result
                .as_ref()
                .map_or(0, |r| shown_rows(r, &model.results).len());
            let row = &mut model.results.row;
            *row = if down {
                (*row + WHEEL_ROWS).min(rows.saturating_sub(1))
            } else {
                row.saturating_sub(WHEEL_ROWS)
            };
        }
    }
}

fn step(value: u16, down: bool) -> u16 {
    if down {
        value.saturating_add(1)
    } else {
        value.saturating_sub(1)
    }
}
