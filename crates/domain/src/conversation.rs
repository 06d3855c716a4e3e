//! Messaging conversations as CRM notes: the messages a person writes on a
//! messaging channel (WhatsApp, SMS) reach the CRM as one readable note per
//! conversation, not one note per message.
//!
//! A conversation is the messages of one `conversation_id` (one person on one
//! source number) with no gap longer than [`IDLE_GAP`]. Its note carries a
//! footer with the conversation's tag, the time of its latest message and the
//! tag of every message it holds, so the note itself is the state: a message is
//! appended once (its tag is there, or it is not), a message after a long
//! silence opens a new note, and a note close to the CRM's size limit is
//! continued in a new one. Nothing is kept in the ledger.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};

use crate::event::{EventType, LeadEvent};
use crate::note::{carries_tag, tag as event_tag};

/// A silence longer than this ends a conversation: the next message opens a new note.
pub const IDLE_GAP: chrono::Duration = chrono::Duration::minutes(30);

const LAST: &str = "leadbridge-last:";

/// Whether the event is one message of a conversation (and so joins its note).
pub fn is_message(event: &LeadEvent) -> bool {
    event.event_type == EventType::MessageReceived && event.conversation_id.is_some()
}

/// The tag every note of a conversation carries (the id hashed: conversation
/// ids hold phone numbers).
pub fn tag(conversation_id: &str) -> String {
    let h = hex::encode(Sha256::digest(conversation_id.as_bytes()));
    format!("leadbridge-conversation:{}", &h[..24])
}

/// Whether a note body belongs to this conversation.
pub fn is_note_of(body: &str, conversation_tag: &str) -> bool {
    body.contains(conversation_tag)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn ts(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The message's lines as note paragraphs.
fn lines(event: &LeadEvent) -> String {
    let from_transcript: Vec<String> = event
        .transcript
        .iter()
        .flat_map(|t| t.lines.iter())
        .map(|l| {
            format!(
                "<p>{} · {}: {}</p>",
                ts(&l.at.unwrap_or(event.occurred_at)),
                esc(&l.from),
                esc(&l.text)
            )
        })
        .collect();
    if from_transcript.is_empty() {
        format!("<p>{} · visitor: (no text)</p>", ts(&event.occurred_at))
    } else {
        from_transcript.join("")
    }
}

fn footer(conversation_tag: &str, last: &DateTime<Utc>, tags: &[String]) -> String {
    format!(
        "<p>Ref: {conversation_tag} {LAST}{} {}</p>",
        ts(last),
        tags.join(" ")
    )
}

fn heading(event: &LeadEvent) -> String {
    let channel = match event.context.channel.as_deref() {
        Some("whatsapp") => "WhatsApp",
        Some("sms") => "SMS",
        Some(_) | None => "Chat",
    };
    let ad = event
        .context
        .ad_headline
        .as_deref()
        .map(|h| format!("<p><strong>From ad:</strong> {}</p>", esc(h)))
        .unwrap_or_default();
    format!(
        "<p><strong>{channel} conversation</strong> (bot {})</p>{ad}",
        esc(event.bot_id.as_str())
    )
}

/// The body of a new conversation note holding this first message.
pub fn new_note(event: &LeadEvent, max_chars: usize) -> String {
    let conv = tag(event.conversation_id.as_deref().unwrap_or_default());
    let foot = footer(&conv, &event.occurred_at, &[event_tag(&event.event_id)]);
    let mut body = heading(event) + &lines(event);
    let budget = max_chars.saturating_sub(foot.chars().count() + 1);
    if body.chars().count() > budget {
        body = body
            .chars()
            .take(budget.saturating_sub(1))
            .collect::<String>()
            + "…";
    }
    body + &foot
}

/// What a message does to its conversation's latest note.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Append {
    /// The note already holds this message (a retry or a redelivery).
    Already,
    /// The note's new body, with the message added.
    Body(String),
    /// The conversation went quiet for longer than [`IDLE_GAP`], or the note is
    /// full: the message opens a new note ([`new_note`]).
    NewNote,
}

/// The time of the latest message a conversation note holds.
pub fn last_message_at(body: &str) -> Option<DateTime<Utc>> {
    let at = body.rfind(LAST)? + LAST.len();
    let raw: String = body[at..]
        .chars()
        .take_while(|c| !c.is_whitespace() && *c != '<')
        .collect();
    DateTime::parse_from_rfc3339(&raw)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Adds the message to the note `body` (the latest note of its conversation).
pub fn append(body: &str, event: &LeadEvent, max_chars: usize) -> Append {
    if carries_tag(body, &event.event_id) {
        return Append::Already;
    }
    let conv = tag(event.conversation_id.as_deref().unwrap_or_default());
    let (Some(last), Some(foot_at)) = (last_message_at(body), body.rfind("<p>Ref: ")) else {
        return Append::NewNote;
    };
    if event.occurred_at - last > IDLE_GAP {
        return Append::NewNote;
    }
    let mut tags: Vec<String> = body[foot_at..]
        .split_whitespace()
        .filter(|w| w.starts_with("leadbridge-event:"))
        .map(|w| w.trim_end_matches("</p>").to_string())
        .collect();
    tags.push(event_tag(&event.event_id));
    let last = last.max(event.occurred_at);
    let new = format!(
        "{}{}{}",
        &body[..foot_at],
        lines(event),
        footer(&conv, &last, &tags)
    );
    if new.chars().count() > max_chars {
        return Append::NewNote;
    }
    Append::Body(new)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(id: &str, at: &str, text: &str) -> LeadEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": id, "event_type": "message.received", "occurred_at": at,
            "bot_id": "bot_wa", "conversation_id": "whatsapp:106540352242922:16505551234",
            "visitor": {"wa_id": "16505551234"},
            "context": {"channel": "whatsapp"},
            "transcript": {"lines": [{"at": at, "from": "visitor", "text": text}]}
        }))
        .unwrap()
    }

    #[test]
    fn messages_join_one_note_once_each_in_order() {
        let a = msg("wa:1", "2026-05-04T11:00:00Z", "Hi <there>");
        let b = msg("wa:2", "2026-05-04T11:10:00Z", "Do you ship?");
        let note = new_note(&a, 65_536);
        assert!(note.contains("WhatsApp conversation"));
        assert!(note.contains("Hi &lt;there&gt;"));
        let Append::Body(note) = append(&note, &b, 65_536) else {
            panic!("appended")
        };
        assert!(note.find("Hi &lt;there&gt;") < note.find("Do you ship?"));
        assert_eq!(append(&note, &a, 65_536), Append::Already);
        assert_eq!(append(&note, &b, 65_536), Append::Already);
        assert!(carries_tag(&note, &a.event_id) && carries_tag(&note, &b.event_id));
        assert_eq!(
            last_message_at(&note).unwrap(),
            "2026-05-04T11:10:00Z".parse::<DateTime<Utc>>().unwrap()
        );
        assert!(is_note_of(
            &note,
            &tag(a.conversation_id.as_deref().unwrap())
        ));
        assert!(!note.contains("16505551234"), "the tag hashes the number");
    }

    #[test]
    fn a_late_older_message_joins_without_moving_the_last_time_back() {
        let a = msg("wa:1", "2026-05-04T11:00:00Z", "one");
        let b = msg("wa:2", "2026-05-04T11:10:00Z", "two");
        let old = msg("wa:0", "2026-05-04T10:59:00Z", "zero");
        let Append::Body(n) = append(&new_note(&a, 65_536), &b, 65_536) else {
            panic!()
        };
        let Append::Body(n) = append(&n, &old, 65_536) else {
            panic!()
        };
        assert_eq!(
            last_message_at(&n).unwrap(),
            "2026-05-04T11:10:00Z".parse::<DateTime<Utc>>().unwrap()
        );
    }

    #[test]
    fn silence_or_a_full_note_opens_a_new_note() {
        let a = msg("wa:1", "2026-05-04T11:00:00Z", "one");
        let later = msg("wa:2", "2026-05-04T11:31:00Z", "two");
        assert_eq!(
            append(&new_note(&a, 65_536), &later, 65_536),
            Append::NewNote
        );
        let soon = msg("wa:3", "2026-05-04T11:01:00Z", &"x".repeat(500));
        assert_eq!(append(&new_note(&a, 65_536), &soon, 400), Append::NewNote);
        assert_eq!(append("<p>not ours</p>", &soon, 65_536), Append::NewNote);
    }

    #[test]
    fn a_long_first_message_is_cut_but_keeps_the_footer() {
        let a = msg("wa:1", "2026-05-04T11:00:00Z", &"y".repeat(10_000));
        let n = new_note(&a, 1_000);
        assert!(n.chars().count() <= 1_000);
        assert!(carries_tag(&n, &a.event_id));
        assert!(last_message_at(&n).is_some());
    }
}
