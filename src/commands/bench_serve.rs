//! `nano-analyst bench-serve --url URL --clients 40 --questions 3`: a bounded load test of a
//! running server. Each client asks its questions one after another; a 503 is retried
//! after its Retry-After. Afterwards the history is read back: every answered run must be
//! in it exactly once, and nothing else may have been recorded meanwhile.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::cli::BenchServeArgs;
use crate::error::AppError;

const DEFAULT_QUESTIONS: [&str; 3] = [
    "How many customers are there?",
    "Which five artists have the most albums?",
    "What is the total of all invoices per billing country?",
];

/// What one request came to.
#[derive(Debug, Default)]
struct Outcome {
    run_id: Option<i64>,
    /// 503s before the answer.
    refusals: u32,
    /// A status other than 200 and 503, or no connection: the error.
    error: Option<String>,
    latency: Duration,
}

struct Client {
    agent: ureq::Agent,
    url: String,
    token: Option<String>,
}

impl Client {
    fn new(args: &BenchServeArgs) -> Self {
        let config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(3600)))
            .build();
        Self {
            agent: ureq::Agent::new_with_config(config),
            url: args.url.trim_end_matches('/').to_string(),
            token: args.token.clone(),
        }
    }

    /// Status, Retry-After and body of a request.
    fn call(&self, path: &str, body: Option<&Value>) -> Result<(u16, u64, String), String> {
        let url = format!("{}{path}", self.url);
        let auth = self.token.as_ref().map(|t| format!("Bearer {t}"));
        let response = match body {
            Some(body) => {
                let mut request = self
                    .agent
                    .post(&url)
                    .header("Content-Type", "application/json");
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.send(body.to_string())
            }
            None => {
                let mut request = self.agent.get(&url);
                if let Some(auth) = &auth {
                    request = request.header("Authorization", auth);
                }
                request.call()
            }
        }
        .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
            .unwrap_or(1);
        let text = response
            .into_body()
            .read_to_string()
            .map_err(|e| e.to_string())?;
        Ok((status, retry_after, text))
    }

    fn ask(&self, body: &Value, max_retries: u32) -> Outcome {
        let started = Instant::now();
        let mut outcome = Outcome::default();
        loop {
            match self.call("/v1/ask", Some(body)) {
                Ok((503, retry_after, _)) if outcome.refusals < max_retries => {
                    outcome.refusals += 1;
                    std::thread::sleep(Duration::from_secs(retry_after));
                }
                Ok((200, _, text)) => {
                    let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
                    outcome.run_id = value.get("run_id").and_then(Value::as_i64);
                    if outcome.run_id.is_none() {
                        outcome.error = Some("answered without a run_id".into());
                    }
                    break;
                }
                Ok((status, _, text)) => {
                    outcome.error = Some(format!("{status}: {}", text.trim()));
                    break;
                }
                Err(error) => {
                    outcome.error = Some(error);
                    break;
                }
            }
        }
        outcome.latency = started.elapsed();
        outcome
    }

    /// The ids of the database's newest recorded runs.
    fn history_ids(&self, database: &str) -> Result<Vec<i64>, AppError> {
        let (status, _, text) = self
            .call(&format!("/v1/history?database={database}&limit=1000"), None)
            .map_err(|e| AppError::Usage(format!("cannot read the history: {e}")))?;
        if status != 200 {
            return Err(AppError::Usage(format!(
                "reading the history answered {status}: {}",
                text.trim()
            )));
        }
        let value: Value = serde_json::from_str(&text).map_err(AppError::json("the history"))?;
        Ok(value["runs"]
            .as_array()
            .map(|runs| runs.iter().filter_map(|r| r["id"].as_i64()).collect())
            .unwrap_or_default())
    }
}

/// Returns whether every request was answered and recorded exactly once.
pub fn run(args: &BenchServeArgs) -> Result<bool, AppError> {
    if args.clients == 0 || args.questions == 0 {
        return Err(AppError::Usage(
            "--clients and --questions must be at least 1".into(),
        ));
    }
    let questions: Vec<String> = if args.question_texts.is_empty() {
        DEFAULT_QUESTIONS.iter().map(|q| q.to_string()).collect()
    } else {
        args.question_texts.clone()
    };
    let client = Client::new(args);
    let before: BTreeSet<i64> = client.history_ids(&args.database)?.into_iter().collect();
    let started = Instant::now();
    let outcomes: Vec<Outcome> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..args.clients)
            .map(|c| {
                let (client, questions) = (&client, &questions);
                scope.spawn(move || {
                    (0..args.questions)
                        .map(|k| {
                            let question = &questions[(c + k) % questions.len()];
                            let body = json!({"database": args.database, "question": question,
                                "answer": args.with_answer});
                            client.ask(&body, args.max_retries)
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_default())
            .collect()
    });
    let wall = started.elapsed();
    let after = client.history_ids(&args.database)?;
    Ok(report(args, &outcomes, wall, &before, &after))
}

fn report(
    args: &BenchServeArgs,
    outcomes: &[Outcome],
    wall: Duration,
    before: &BTreeSet<i64>,
    after: &[i64],
) -> bool {
    let sent = args.clients * args.questions;
    let answered: Vec<&Outcome> = outcomes.iter().filter(|o| o.run_id.is_some()).collect();
    let errors: Vec<&String> = outcomes.iter().filter_map(|o| o.error.as_ref()).collect();
    let refusals: u32 = outcomes.iter().map(|o| o.refusals).sum();
    let mut latencies: Vec<Duration> = answered.iter().map(|o| o.latency).collect();
    latencies.sort();
    let percentile = |p: f64| {
        let at = ((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1);
        latencies.get(at).map_or(0.0, Duration::as_secs_f64)
    };
    let answered_ids: BTreeSet<i64> = answered.iter().filter_map(|o| o.run_id).collect();
    let new_ids: Vec<i64> = after
        .iter()
        .copied()
        .filter(|id| !before.contains(id))
        .collect();
    let new_set: BTreeSet<i64> = new_ids.iter().copied().collect();
    let missing = answered_ids.difference(&new_set).count();
    let unexpected = new_set.difference(&answered_ids).count();
    let duplicated_ids = answered.len() - answered_ids.len();
    crate::outln!(
        "{} clients x {} questions = {sent} requests in {:.1} s",
        args.clients,
        args.questions,
        wall.as_secs_f64()
    );
    crate::outln!(
        "answered {} | errors {} | lost {} | 503 refusals {refusals} (each retried after Retry-After)",
        answered.len(),
        errors.len(),
        sent - outcomes.len()
    );
    crate::outln!(
        "latency p50 {:.1} s, p95 {:.1} s, max {:.1} s (queue wait and retries included)",
        percentile(0.5),
        percentile(0.95),
        percentile(1.0)
    );
    crate::outln!(
        "throughput {:.3} answers/s ({:.1} answers/min)",
        answered.len() as f64 / wall.as_secs_f64(),
        answered.len() as f64 * 60.0 / wall.as_secs_f64()
    );
    crate::outln!(
        "history: {} new runs; answered but missing {missing}, recorded but not answered \
         {unexpected}, a run id answered twice {duplicated_ids}",
        new_ids.len()
    );
    for error in errors.iter().take(5) {
        crate::outln!("error: {error}");
    }
    errors.is_empty()
        && outcomes.len() == sent
        && missing == 0
        && unexpected == 0
        && duplicated_ids == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args() -> BenchServeArgs {
        let cli = crate::cli::Cli::try_parse_from([
            "nano-analyst",
            "bench-serve",
            "--url",
            "http://127.0.0.1:1",
            "--clients",
            "2",
            "--questions",
            "1",
        ])
        .unwrap();
        match cli.command {
            Some(crate::cli::Command::BenchServe(args)) => args,
            other => panic!("{other:?}"),
        }
    }

    fn answered(run_id: i64) -> Outcome {
        Outcome {
            run_id: Some(run_id),
            ..Outcome::default()
        }
    }

    #[test]
    fn a_run_missing_from_or_extra_in_the_history_fails_the_bench() {
        let before = BTreeSet::from([1]);
        let outcomes = [answered(2), answered(3)];
        let wall = Duration::from_secs(1);
        assert!(report(&args(), &outcomes, wall, &before, &[3, 2, 1]));
        assert!(!report(&args(), &outcomes, wall, &before, &[3, 1]));
        assert!(!report(&args(), &outcomes, wall, &before, &[4, 3, 2, 1]));
        let twice = [answered(2), answered(2)];
        assert!(!report(&args(), &twice, wall, &before, &[2, 1]));
        let lost = [answered(2)];
        assert!(!report(&args(), &lost, wall, &before, &[2, 1]));
    }
}
