//! State of the history overlay: the runs listed by the store, a fuzzy filter over their
//! questions (nucleo's matcher, as in atuin/helix) and the selection.

use nucleo_matcher::pattern::{CaseMatching, Normalization, Pattern};
use nucleo_matcher::{Config, Matcher, Utf32Str};

use crate::core::feedback::history::HistoryEntry;
use crate::tui::app::RequestId;

#[derive(Debug, Clone, PartialEq)]
pub struct HistoryState {
    pub request: RequestId,
    pub entries: Vec<HistoryEntry>,
    pub loading: bool,
    pub error: Option<String>,
    pub filter: String,
    /// Indexes into `entries` that match the filter, best first (newest first if empty).
    pub matches: Vec<usize>,
    /// Position in `matches`.
    pub selected: usize,
}

impl HistoryState {
    pub fn new(request: RequestId) -> Self {
        Self {
            request,
            entries: Vec::new(),
            loading: true,
            error: None,
            filter: String::new(),
            matches: Vec::new(),
            selected: 0,
        }
    }

    pub(crate) fn set_entries(&mut self, entries: Vec<HistoryEntry>) {
        self.entries = entries;
        self.loading = false;
        self.refilter();
    }

    pub(crate) fn set_filter(&mut self, filter: String) {
        self.filter = filter;
        self.refilter();
    }

    pub(crate) fn selected_entry(&self) -> Option<&HistoryEntry> {
        self.matches.get(self.selected).map(|&i| &self.entries[i])
    }

    pub(crate) fn move_selection(&mut self, down: bool) {
        if down {
            if self.selected + 1 < self.matches.len() {
                self.selected += 1;
            }
        } else {
            self.selected = self.selected.saturating_sub(1);
        }
    }

    fn refilter(&mut self) {
        self.selected = 0;
        if self.filter.trim().is_empty() {
            self.matches = (0..self.entries.len()).collect();
            return;
        }
        let pattern = Pattern::parse(&self.filter, CaseMatching::Ignore, Normalization::Smart);
        let mut matcher = Matcher::new(Config::DEFAULT);
        let mut buffer = Vec::new();
        let mut scored: Vec<(usize, u32)> = self
            .entries
            .iter()
            .enumerate()
            .filter_map(|(index, entry)| {
                let haystack = Utf32Str::new(&entry.question, &mut buffer);
                pattern
                    .score(haystack, &mut matcher)
                    .map(|score| (index, score))
            })
            .collect();
        // Best score first; the store's newest-first order breaks ties.
        scored.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        self.matches = scored.into_iter().map(|(index, _)| index).collect();
    }
}
