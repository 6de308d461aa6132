//! Settings for one run, resolved from the config file, the environment and the flags.

use std::path::PathBuf;

use crate::cli::GlobalArgs;
use crate::config::{FeedbackSettings, Settings, byte_limit, query_timeout};
use crate::core::db::exec::ExecLimits;
use crate::core::db::render::RenderOptions;
use crate::core::pipeline::PipelineConfig;
use crate::core::retrieval::RetrievalOptions;
use crate::error::AppError;
use crate::llm::engine::{EngineConfig, default_threads};
use crate::paths::AppPaths;
use crate::remote::{API_KEY_VAR, RemoteConfig};

/// Resolved settings for a run: config file + environment + flags.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub paths: AppPaths,
    pub engine: EngineConfig,
    pub pipeline: PipelineConfig,
    /// The embedding model for schema retrieval (may be missing: BM25 alone then).
    pub embed_model: PathBuf,
    pub glossary: Option<PathBuf>,
    pub retrieval: crate::core::retrieval::RetrievalOptions,
    pub render: RenderOptions,
    pub feedback: FeedbackSettings,
    /// The model server to ask instead of the local model (`--llm-url`).
    pub remote: Option<RemoteConfig>,
    /// `nano-analyst serve`'s settings (its flags override them).
    pub serve: crate::config::ServeSettings,
}

impl RuntimeOptions {
    pub fn resolve(global: &GlobalArgs) -> Result<Self, AppError> {
        if let Some(path) = &global.config {
            crate::config::require_named_config(path)?;
        }
        let paths = AppPaths::resolve(global.data_dir.as_deref(), global.config.as_deref());
        let settings = Settings::load(paths.config_file.as_deref())?;
        // An explicit --model (or NANO_ANALYST_MODEL) wins; otherwise the active fine-tuned
        // version of the configured (or default) model, when there is one.
        let model_path: PathBuf = global.model.clone().unwrap_or_else(|| {
            let configured = settings
                .model_path()
                .unwrap_or_else(|| paths.default_model());
            crate::core::finetune::registry::resolve_model(&paths.versions_dir(), &configured)
        });
        let mut engine = EngineConfig::new(model_path);
        if let Some(path) = &global.lora {
            let scale = global.lora_scale.unwrap_or(1.0);
            if !scale.is_finite() {
                return Err(AppError::Usage(format!(
                    "--lora-scale {scale} must be a number"
                )));
            }
            engine.lora = Some(crate::llm::engine::LoraConfig {
                path: path.clone(),
                scale,
            });
        } else if global.lora_scale.is_some() {
            return Err(AppError::Usage(
                "--lora-scale needs --lora PATH (a GGUF LoRA adapter)".into(),
            ));
        }
        let threads = global.threads.unwrap_or(settings.model.threads);
        engine.threads = if threads == 0 {
            default_threads()
        } else {
            i32::try_from(threads).unwrap_or(i32::MAX)
        };
        engine.gpu_layers = global.gpu_layers.unwrap_or(settings.model.gpu_layers);
        engine.context_tokens = global.context.unwrap_or(settings.model.context_tokens);
        if engine.context_tokens < 512 {
            return Err(AppError::Usage(format!(
                "--context {} is too small (at least 512)",
                engine.context_tokens
            )));
        }
        engine.prefix_cache_dir = Some(paths.prefix_cache_dir());

        let timeout = global.timeout.unwrap_or(settings.pipeline.timeout_secs);
        let timeout = query_timeout(timeout)
            .map_err(|reason| AppError::Usage(format!("--timeout {timeout}: {reason}")))?;
        let mib = global
            .byte_limit_mib
            .unwrap_or(settings.pipeline.byte_limit_mib);
        let byte_limit = byte_limit(mib)
            .map_err(|reason| AppError::Usage(format!("--byte-limit-mib {mib}: {reason}")))?;
        let row_limit = global.row_limit.unwrap_or(settings.pipeline.row_limit);
        if row_limit == 0 {
            return Err(AppError::Usage("--row-limit must be at least 1".into()));
        }
        let mut pipeline = settings.pipeline_config();
        pipeline.max_repairs = global.max_repairs.unwrap_or(pipeline.max_repairs);
        pipeline.limits = ExecLimits {
            row_limit,
            timeout,
            byte_limit,
        };
        let embed_model = global
            .embed_model
            .clone()
            .or_else(|| {
                let configured = &settings.retrieval.embed_model;
                (!configured.is_empty()).then(|| PathBuf::from(configured))
            })
            .unwrap_or_else(|| crate::llm::embedder::default_embed_model(&paths.data_dir));
        let render = RenderOptions {
            sample_values: settings.schema.sample_values,
            categorical_max_distinct: settings.schema.categorical_max_distinct,
            row_counts: settings.schema.row_counts,
        };
        let retrieval = crate::core::retrieval::RetrievalOptions {
            render,
            ..retrieval_options(&settings.retrieval, engine.context_tokens)
        };
        Ok(Self {
            paths,
            engine,
            pipeline,
            embed_model,
            glossary: global.glossary.clone(),
            retrieval,
            render,
            remote: remote_config(global, &settings.model)?,
            feedback: settings.feedback,
            serve: settings.serve,
        })
    }
}

/// The model server from `--llm-url` or `model.llm_url`; `None` when neither names one.
/// The API key is read from the environment here and nowhere else.
fn remote_config(
    global: &GlobalArgs,
    settings: &crate::config::ModelSettings,
) -> Result<Option<RemoteConfig>, AppError> {
    let url = global
        .llm_url
        .clone()
        .unwrap_or_else(|| settings.llm_url.clone());
    let url = url.trim().trim_end_matches('/').to_string();
    if url.is_empty() {
        return Ok(None);
    }
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(AppError::Usage(format!(
            "--llm-url '{}' must start with http:// or https:// (e.g. http://gpu-box:8080/v1)",
            crate::remote::engine::shown_url(&url)
        )));
    }
    let model = global
        .llm_model
        .clone()
        .unwrap_or_else(|| settings.llm_model.clone());
    let api_key = std::env::var(API_KEY_VAR)
        .ok()
        .filter(|key| !key.trim().is_empty());
    Ok(Some(RemoteConfig {
        url,
        model: (!model.trim().is_empty()).then(|| model.trim().to_string()),
        server: global.llm_server.unwrap_or(settings.llm_server),
        api_key,
        connect_timeout: std::time::Duration::from_secs(settings.llm_connect_timeout_secs),
        read_timeout: std::time::Duration::from_secs(settings.llm_read_timeout_secs),
    }))
}

/// Resolves retrieval options from settings and the context window.
pub fn retrieval_options(
    settings: &crate::config::RetrievalSettings,
    context_tokens: u32,
) -> RetrievalOptions {
    RetrievalOptions {
        budget_tokens: if settings.budget_tokens == 0 {
            RetrievalOptions::budget_for_context(context_tokens)
        } else {
            settings.budget_tokens
        },
        max_tables: settings.max_tables.max(1),
        whole_order: settings.whole_schema_order,
        ..RetrievalOptions::default()
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::Cli;
    use crate::remote::ServerKind;

    fn resolve(config: &str, flags: &[&str]) -> Result<RuntimeOptions, AppError> {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config.toml");
        std::fs::write(&file, config).unwrap();
        let mut args = vec!["nano-analyst", "--config", file.to_str().unwrap()];
        args.extend_from_slice(flags);
        let cli = Cli::try_parse_from(args).unwrap();
        RuntimeOptions::resolve(&cli.global)
    }

    #[test]
    fn the_model_server_comes_from_the_config_and_the_flags_win() {
        let config = "[model]\nllm_url = \"http://gpu-box:8000/v1/\"\nllm_model = \"coder\"\nllm_server = \"vllm\"\nllm_read_timeout_secs = 30\n";
        let remote = resolve(config, &[]).unwrap().remote.unwrap();
        assert_eq!(remote.url, "http://gpu-box:8000/v1");
        assert_eq!(remote.model.as_deref(), Some("coder"));
        assert_eq!(remote.server, ServerKind::Vllm);
        assert_eq!(remote.read_timeout, std::time::Duration::from_secs(30));
        let flags = [
            "--llm-url",
            "https://other:1/v1",
            "--llm-model",
            "big",
            "--llm-server",
            "llama-server",
        ];
        let remote = resolve(config, &flags).unwrap().remote.unwrap();
        assert_eq!(remote.url, "https://other:1/v1");
        assert_eq!(remote.model.as_deref(), Some("big"));
        assert_eq!(remote.server, ServerKind::LlamaServer);
        assert!(resolve("", &[]).unwrap().remote.is_none());
    }

    #[test]
    fn a_url_without_a_scheme_is_refused_without_its_password() {
        let error = resolve("", &["--llm-url", "ftp://me:pw@gpu-box/v1"])
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("'ftp://gpu-box/v1' must start with http://"),
            "{error}"
        );
        let error = resolve("[model]\nllm_read_timeout_secs = 0\n", &[])
            .unwrap_err()
            .to_string();
        assert!(error.contains("llm_read_timeout_secs"), "{error}");
    }
}
