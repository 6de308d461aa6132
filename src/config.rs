//! Settings: the embedded, commented default file, merged with the user's file; the CLI
//! (which also reads `NANO_ANALYST_*` variables through clap) overrides both.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::core::db::exec::ExecLimits;
use crate::core::model::Sampling;
use crate::core::pipeline::PipelineConfig;
use crate::core::rewrite::RewriteSettings;

pub const DEFAULT_CONFIG: &str = include_str!("../assets/default-config.toml");

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file '{path}': {reason}")]
    Read { path: String, reason: String },
    #[error("invalid config file '{path}': {reason}")]
    Invalid { path: String, reason: String },
    #[error(
        "config file '{0}' does not exist (leave out --config to use the built-in defaults; \
         `nano-analyst paths` shows where the default one goes)"
    )]
    Missing(String),
}

/// A config file named on the command line must exist: a typo in `--config` silently
/// running on the defaults looks like a setting that does not work. `NANO_ANALYST_CONFIG`
/// may name a file not written yet (isolated test runs point it at an empty directory).
pub fn require_named_config(path: &Path) -> Result<(), ConfigError> {
    let from_environment =
        std::env::var_os("NANO_ANALYST_CONFIG").is_some_and(|value| Path::new(&value) == path);
    if from_environment || path.exists() {
        Ok(())
    } else {
        Err(ConfigError::Missing(path.display().to_string()))
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    pub model: ModelSettings,
    pub pipeline: PipelineSettings,
    /// The terminal app's section, checked by `tui::config` (keymap, theme).
    #[serde(default)]
    pub tui: toml::Table,
    pub retrieval: RetrievalSettings,
    pub schema: SchemaSettings,
    pub feedback: FeedbackSettings,
    pub rewrites: RewriteSettings,
    pub serve: ServeSettings,
}

/// `nano-analyst serve`'s defaults; its flags override them.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServeSettings {
    pub host: String,
    pub port: u16,
    pub queue: usize,
    pub request_timeout_secs: u64,
    pub max_body_kib: usize,
    /// Name -> database file.
    pub databases: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetrievalSettings {
    pub embed_model: String,
    pub budget_tokens: usize,
    pub max_tables: usize,
    pub whole_schema_order: crate::core::retrieval::WholeSchemaOrder,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaSettings {
    pub sample_values: bool,
    pub categorical_max_distinct: u64,
    pub row_counts: bool,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeedbackSettings {
    pub record_history: bool,
    pub examples_per_question: usize,
    pub retrain_threshold: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelSettings {
    pub path: String,
    pub threads: u32,
    pub gpu_layers: u32,
    pub context_tokens: u32,
    pub llm_url: String,
    pub llm_model: String,
    pub llm_server: crate::remote::ServerKind,
    pub llm_connect_timeout_secs: u64,
    pub llm_read_timeout_secs: u64,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineSettings {
    pub max_repairs: u32,
    pub row_limit: usize,
    pub timeout_secs: f64,
    pub byte_limit_mib: u64,
    pub answer: bool,
    pub answer_rows: usize,
    pub sql_opening: String,
    pub candidates: u32,
    pub candidate_temperature: f32,
    pub grammar: bool,
    pub retry_grammar: bool,
    pub fallback_candidates: u32,
    pub repair_budget_secs: u64,
    pub max_sql_tokens: usize,
    pub max_answer_tokens: usize,
}

impl Settings {
    /// Defaults merged with `user_file` when it exists.
    pub fn load(user_file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut merged = parse(DEFAULT_CONFIG, "built-in defaults")?;
        if let Some(path) = user_file.filter(|p| p.is_file()) {
            let shown = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
                path: shown.clone(),
                reason: e.to_string(),
            })?;
            let mut user = parse(&text, &shown)?;
            move_rewrite_keys(&mut user);
            merge(&mut merged, user);
        }
        let shown = user_file
            .map(|p| p.display().to_string())
            .unwrap_or_else(|| "config".into());
        let settings: Settings =
            merged
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    path: shown.clone(),
                    reason: one_line(&e.to_string()),
                })?;
        settings.validate(&shown)?;
        Ok(settings)
    }

    fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let invalid = |reason: &str| {
            Err(ConfigError::Invalid {
                path: path.into(),
                reason: reason.into(),
            })
        };
        if self.model.context_tokens < 512 {
            return invalid("model.context_tokens must be at least 512");
        }
        if self.model.llm_connect_timeout_secs == 0 || self.model.llm_read_timeout_secs == 0 {
            return invalid(
                "model.llm_connect_timeout_secs and llm_read_timeout_secs must be at least 1",
            );
        }
        if self.pipeline.row_limit == 0 {
            return invalid("pipeline.row_limit must be at least 1");
        }
        if let Err(reason) = query_timeout(self.pipeline.timeout_secs) {
            return invalid(&format!("pipeline.timeout_secs: {reason}"));
        }
        if let Err(reason) = byte_limit(self.pipeline.byte_limit_mib) {
            return invalid(&format!("pipeline.byte_limit_mib: {reason}"));
        }
        if self.pipeline.candidates == 0 {
            return invalid("pipeline.candidates must be at least 1");
        }
        let temperature = self.pipeline.candidate_temperature;
        if !(temperature > 0.0 && temperature.is_finite()) {
            return invalid("pipeline.candidate_temperature must be a positive number");
        }
        Ok(())
    }

    /// The settings every built-in default comes from: the embedded default config.
    pub fn defaults() -> Result<Self, ConfigError> {
        Self::load(None)
    }

    /// The pipeline these settings describe (before command-line flags).
    pub fn pipeline_config(&self) -> PipelineConfig {
        let pipeline = &self.pipeline;
        PipelineConfig {
            max_repairs: pipeline.max_repairs,
            // `load` validated both; the defaults only stand in for settings built by hand.
            limits: ExecLimits {
                row_limit: pipeline.row_limit,
                timeout: query_timeout(pipeline.timeout_secs)
                    .unwrap_or(ExecLimits::default().timeout),
                byte_limit: byte_limit(pipeline.byte_limit_mib)
                    .unwrap_or(ExecLimits::default().byte_limit),
            },
            answer: pipeline.answer,
            max_sql_tokens: pipeline.max_sql_tokens,
            max_answer_tokens: pipeline.max_answer_tokens,
            answer_rows: pipeline.answer_rows,
            sampling: Sampling::Greedy,
            sql_opening: pipeline.sql_opening.clone(),
            candidates: pipeline.candidates,
            candidate_temperature: pipeline.candidate_temperature,
            grammar: pipeline.grammar,
            retry_grammar: pipeline.retry_grammar,
            fallback_candidates: pipeline.fallback_candidates,
            repair_budget: (pipeline.repair_budget_secs > 0)
                .then(|| std::time::Duration::from_secs(pipeline.repair_budget_secs)),
            rewrites: self.rewrites,
        }
    }

    pub fn model_path(&self) -> Option<PathBuf> {
        (!self.model.path.is_empty()).then(|| PathBuf::from(&self.model.path))
    }
}

/// The shortest and longest query time limits, in seconds.
const TIMEOUT_RANGE_SECS: (f64, f64) = (0.001, 86_400.0);
/// The smallest and largest result budgets, in MiB. SQLite cannot hold a value longer than
/// about 1 GB anyway (its compile-time SQLITE_MAX_LENGTH).
const BYTE_LIMIT_RANGE_MIB: (u64, u64) = (1, 1024);

/// A query time limit from seconds (config or `--timeout`), or why it is out of range.
pub fn query_timeout(secs: f64) -> Result<std::time::Duration, String> {
    let (low, high) = TIMEOUT_RANGE_SECS;
    let out_of_range =
        || format!("the timeout must be between {low} and {high} seconds, not {secs}");
    if !(low..=high).contains(&secs) {
        return Err(out_of_range());
    }
    std::time::Duration::try_from_secs_f64(secs).map_err(|_| out_of_range())
}

/// A result budget in bytes from MiB (config or `--byte-limit-mib`), or why it is out of
/// range.
pub fn byte_limit(mib: u64) -> Result<usize, String> {
    let (low, high) = BYTE_LIMIT_RANGE_MIB;
    if !(low..=high).contains(&mib) {
        return Err(format!(
            "the byte limit must be between {low} and {high} MiB, not {mib}"
        ));
    }
    usize::try_from(mib << 20).map_err(|_| format!("{mib} MiB does not fit in memory here"))
}

fn parse(text: &str, path: &str) -> Result<toml::Table, ConfigError> {
    text.parse::<toml::Table>()
        .map_err(|e| ConfigError::Invalid {
            path: path.into(),
            reason: one_line(&e.to_string()),
        })
}

/// Rewrite switches were keys of `[pipeline]` before they got their own `[rewrites]`
/// table; a user file that still has them there keeps working.
const MOVED_TO_REWRITES: [&str; 9] = [
    "drop_unused_joins",
    "intersect_both_values",
    "ground_literals",
    "filter_named_flags",
    "drop_unnamed_flags",
    "lookup_through_keys",
    "group_by_entity_key",
    "show_group_columns",
    "check_join_conditions",
];

fn move_rewrite_keys(user: &mut toml::Table) {
    let Some(toml::Value::Table(pipeline)) = user.get_mut("pipeline") else {
        return;
    };
    let moved: toml::Table = MOVED_TO_REWRITES
        .iter()
        .filter_map(|key| Some((key.to_string(), pipeline.remove(*key)?)))
        .collect();
    if moved.is_empty() {
        return;
    }
    tracing::info!("config: [pipeline] rewrite switches read as [rewrites]");
    let rewrites = user
        .entry("rewrites")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(rewrites) = rewrites {
        for (key, value) in moved {
            rewrites.entry(key).or_insert(value);
        }
    }
}

fn merge(base: &mut toml::Table, overlay: toml::Table) {
    for (key, value) in overlay {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(base_table)), toml::Value::Table(overlay_table)) => {
                merge(base_table, overlay_table);
            }
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse_and_user_file_overrides() {
        let defaults = Settings::load(None).unwrap();
        assert_eq!(defaults.pipeline.max_repairs, 3);
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[pipeline]\nrow_limit = 50\n").unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert_eq!(settings.pipeline.row_limit, 50);
        assert_eq!(settings.pipeline.max_repairs, 3);
    }

    #[test]
    fn limits_come_from_the_pipeline_section() {
        let defaults = Settings::defaults().unwrap().pipeline_config().limits;
        assert_eq!(defaults, ExecLimits::default());
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(
            &file,
            "[pipeline]\ntimeout_secs = 86400\nbyte_limit_mib = 1024\n",
        )
        .unwrap();
        let limits = Settings::load(Some(&file))
            .unwrap()
            .pipeline_config()
            .limits;
        assert_eq!(limits.timeout, std::time::Duration::from_secs(86_400));
        assert_eq!(limits.byte_limit, 1 << 30);
        assert_eq!(
            query_timeout(0.0005).unwrap_err(),
            "the timeout must be between 0.001 and 86400 seconds, not 0.0005"
        );
        assert_eq!(
            query_timeout(0.25).unwrap(),
            std::time::Duration::from_millis(250)
        );
    }

    #[test]
    fn rewrite_switches_under_pipeline_still_apply() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, "[pipeline]\ndrop_unused_joins = false\n").unwrap();
        let settings = Settings::load(Some(&file)).unwrap();
        assert!(!settings.rewrites.drop_unused_joins);
        assert!(settings.rewrites.ground_literals);
        assert!(Settings::defaults().unwrap().rewrites.drop_unused_joins);
    }

    #[test]
    fn invalid_values_are_one_line_errors_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        for (text, needle) in [
            ("[pipeline]\nrow_limit = \"many\"\n", "row_limit"),
            (
                "[pipeline]\nrow_limit = 0\n",
                "row_limit must be at least 1",
            ),
            ("[pipeline]\nbogus = 1\n", "bogus"),
            (
                "[pipeline]\ntimeout_secs = 1e20\n",
                "pipeline.timeout_secs: the timeout must be between 0.001 and 86400 seconds, not 100000000000000000000",
            ),
            ("[pipeline]\ntimeout_secs = -1\n", "between 0.001 and 86400"),
            ("[pipeline]\ntimeout_secs = 0\n", "between 0.001 and 86400"),
            ("[pipeline]\ntimeout_secs = nan\n", "not NaN"),
            ("[pipeline]\ntimeout_secs = inf\n", "not inf"),
            (
                "[pipeline]\nbyte_limit_mib = 0\n",
                "pipeline.byte_limit_mib: the byte limit must be between 1 and 1024 MiB, not 0",
            ),
            (
                "[pipeline]\nbyte_limit_mib = 5000\n",
                "between 1 and 1024 MiB",
            ),
            ("[pipeline]\nbyte_limit_mib = -1\n", "byte_limit_mib"),
            ("[pipeline]\nbyte_limit_mib = 1e30\n", "byte_limit_mib"),
            ("not toml at all [", "invalid config file"),
        ] {
            std::fs::write(&file, text).unwrap();
            let error = Settings::load(Some(&file)).unwrap_err().to_string();
            assert!(error.contains(needle), "{error}");
            assert!(error.contains("config.toml"), "{error}");
            assert!(!error.contains('\n'), "{error}");
        }
    }
}
