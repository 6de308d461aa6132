//! The answer: one or two sentences about the result, written by the model after the
//! question turns and the query that ran, and kept only when it states nothing the rows
//! and the question do not hold (`grounding`): otherwise it is written once more, then
//! replaced by a plain statement of the result.

use std::time::Instant;

use crate::core::db::exec::QueryResult;
use crate::core::model::{
    ChatMessage, CompletionRequest, LanguageModel, Role, Sampling, StopReason,
};
use crate::core::pipeline::grounding::{cut_at_word, template_answer, ungrounded_claims};
use crate::core::pipeline::outcome::{PipelineEvent, Stage};
use crate::core::pipeline::prompt::{answer_message, sql_reply};
use crate::core::pipeline::run::Run;
use crate::core::pipeline::{PipelineError, millis};

/// The sentence shown with the result.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct AnswerText {
    pub(super) text: String,
    /// The model's sentences stated what the rows do not hold; `text` is the template.
    pub(super) replaced: bool,
}

impl Run<'_> {
    /// Streams the answer to `result` of `sql` and returns it, checked against the rows.
    pub(super) fn answer(
        &mut self,
        model: &mut dyn LanguageModel,
        sql: &str,
        result: &QueryResult,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<AnswerText, PipelineError> {
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
        let first = self.write_sentence(model, messages.clone(), &mut |text| {
            on_event(PipelineEvent::AnswerText(text))
        })?;
        let claims = ungrounded_claims(&first, self.question, result, self.config.answer_rows);
        let answer = if claims.is_empty() {
            AnswerText {
                text: first,
                replaced: false,
            }
        } else {
            tracing::info!(?claims, sentence = %first, "answer not grounded in the rows; asking again");
            messages.push(ChatMessage::new(Role::Assistant, first));
            messages.push(ChatMessage::new(Role::User, retry_message(&claims)));
            let second = self.write_sentence(model, messages, &mut |_| {})?;
            let claims = ungrounded_claims(&second, self.question, result, self.config.answer_rows);
            if claims.is_empty() {
                AnswerText {
                    text: second,
                    replaced: false,
                }
            } else {
                tracing::info!(?claims, sentence = %second, "answer still not grounded; stating the result");
                AnswerText {
                    text: template_answer(result),
                    replaced: true,
                }
            }
        };
        self.timings.answer_ms = millis(answered.elapsed());
        Ok(answer)
    }

    /// One greedy sentence; an answer the token limit stopped is cut at a word and ends
    /// in "…" instead of mid-number.
    fn write_sentence(
        &self,
        model: &mut dyn LanguageModel,
        messages: Vec<ChatMessage>,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<String, PipelineError> {
        let request = CompletionRequest {
            messages,
            assistant_prefix: String::new(),
            max_tokens: self.config.max_answer_tokens,
            stop: Vec::new(),
            sampling: Sampling::Greedy,
            grammar: None,
        };
        let completion = model.complete(&request, on_text)?;
        let text = completion.text.trim();
        Ok(match completion.stop_reason {
            StopReason::MaxTokens | StopReason::Repetition => cut_at_word(text),
            StopReason::EndOfText | StopReason::StopString => text.to_string(),
        })
    }
}

fn retry_message(claims: &[String]) -> String {
    let quoted: Vec<String> = claims.iter().map(|c| format!("\"{c}\"")).collect();
    format!(
        "The results do not contain {}. Answer again in one plain sentence that states only \
         values shown in the results.",
        quoted.join(", ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_retry_names_what_the_rows_lack() {
        assert_eq!(
            retry_message(&["18".into(), "Latin".into()]),
            "The results do not contain \"18\", \"Latin\". Answer again in one plain sentence \
             that states only values shown in the results."
        );
    }
}
