//! The answer: one or two sentences about the result, written by the model after the
//! question turns and the query that ran.

use std::time::Instant;

use crate::core::db::exec::QueryResult;
use crate::core::model::{CompletionRequest, LanguageModel, Sampling};
use crate::core::pipeline::outcome::{PipelineEvent, Stage};
use crate::core::pipeline::prompt::{answer_message, sql_reply};
use crate::core::pipeline::run::Run;
use crate::core::pipeline::{PipelineError, millis};

impl Run<'_> {
    /// Streams the answer to `result` of `sql` and returns it trimmed.
    pub(super) fn answer(
        &mut self,
        model: &mut dyn LanguageModel,
        sql: &str,
        result: &QueryResult,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<String, PipelineError> {
        on_event(PipelineEvent::Stage(Stage::Answering));
        let answered = Instant::now();
        // The repair turns are not part of the answer's conversation, and nothing reads
        // the conversation after the answer.
        let mut messages = std::mem::take(&mut self.messages);
        messages.truncate(self.question_turns_end);
        messages.push(sql_reply(sql));
        messages.push(answer_message(
            self.question,
            result,
            self.config.answer_rows,
        ));
        let request = CompletionRequest {
            messages,
            assistant_prefix: String::new(),
            max_tokens: self.config.max_answer_tokens,
            stop: Vec::new(),
            sampling: Sampling::Greedy,
            grammar: None,
        };
        let completion = model.complete(&request, &mut |text| {
            on_event(PipelineEvent::AnswerText(text))
        })?;
        self.timings.answer_ms = millis(answered.elapsed());
        Ok(completion.text.trim().to_string())
    }
}
