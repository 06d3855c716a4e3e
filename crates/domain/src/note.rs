//! The conversation context written to the CRM as a note/activity.

use crate::event::{EventId, LeadEvent};

/// The tag every note carries, so a retried sync finds the note it already
/// wrote instead of writing a second one.
pub fn tag(event_id: &EventId) -> String {
    format!("leadbridge-event:{}", event_id.as_str())
}

/// Whether `text` carries this event's own tag: the tag followed by the end of
/// the text or by a character no event id contains, so that the tag of `evt_1`
/// is not found in a note of `evt_10` (or `evt_1.2`).
pub fn carries_tag(text: &str, event_id: &EventId) -> bool {
    let tag = tag(event_id);
    text.match_indices(&tag).any(|(at, _)| {
        text[at + tag.len()..]
            .chars()
            .next()
            .is_none_or(|c| !EventId::is_id_char(c))
    })
}

fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The note body: HTML (as CRMs render notes), every sender-supplied value escaped.
/// Summary, intent, qualification answers, entry page, UTM values, consent, and the tag.
pub fn render_html(event: &LeadEvent, max_chars: usize) -> String {
    let mut p: Vec<String> = Vec::new();
    p.push(format!(
        "<p><strong>Chatbot conversation</strong> ({}, bot {})</p>",
        esc(event.event_type.as_str()),
        esc(event.bot_id.as_str())
    ));
    if let Some(t) = &event.transcript {
        if let Some(s) = &t.summary {
            p.push(format!("<p><strong>Summary:</strong> {}</p>", esc(s)));
        }
        let mut facts = Vec::new();
        if let Some(m) = t.messages {
            facts.push(format!("{m} messages"));
        }
        if let Some(d) = t.duration_seconds {
            facts.push(format!("{}m{:02}s", d / 60, d % 60));
        }
        if let Some(s) = &t.sentiment {
            facts.push(format!("sentiment {}", esc(s)));
        }
        if !facts.is_empty() {
            p.push(format!(
                "<p><strong>Conversation:</strong> {}</p>",
                facts.join(", ")
            ));
        }
        if let Some(u) = &t.transcript_url {
            p.push(format!("<p><strong>Transcript:</strong> {}</p>", esc(u)));
        }
    }
    if let Some(i) = &event.intent {
        let mut parts = Vec::new();
        if let Some(pr) = &i.primary {
            parts.push(esc(pr));
        }
        if !i.labels.is_empty() {
            parts.push(format!("labels: {}", esc(&i.labels.join(", "))));
        }
        if let Some(s) = i.qualification_score {
            parts.push(format!("score {s}/100"));
        }
        if !i.competitor_mentions.is_empty() {
            parts.push(format!(
                "competitors: {}",
                esc(&i.competitor_mentions.join(", "))
            ));
        }
        if !parts.is_empty() {
            p.push(format!(
                "<p><strong>Intent:</strong> {}</p>",
                parts.join("; ")
            ));
        }
    }
    if !event.answers.is_empty() {
        let items: Vec<String> = event
            .answers
            .iter()
            .map(|(k, v)| format!("<li>{}: {}</li>", esc(k), esc(v)))
            .collect();
        p.push(format!(
            "<p><strong>Answers:</strong></p><ul>{}</ul>",
            items.join("")
        ));
    }
    if let Some(u) = &event.context.source_url {
        p.push(format!("<p><strong>Entry page:</strong> {}</p>", esc(u)));
    }
    if let Some(r) = &event.context.referrer {
        p.push(format!("<p><strong>Referrer:</strong> {}</p>", esc(r)));
    }
    let utm = event.context.utm();
    if !utm.is_empty() {
        let s: Vec<String> = utm.iter().map(|(k, v)| format!("{k}={}", esc(v))).collect();
        p.push(format!("<p><strong>UTM:</strong> {}</p>", s.join(", ")));
    }
    match &event.consent {
        Some(c) => p.push(format!(
            "<p><strong>Consent:</strong> given {}{}{}</p>",
            c.given_at
                .to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            c.text_version
                .as_deref()
                .map(|v| format!(", text {}", esc(v)))
                .unwrap_or_default(),
            c.purpose
                .as_deref()
                .map(|v| format!(", purpose {}", esc(v)))
                .unwrap_or_default(),
        )),
        None => p.push("<p><strong>Consent:</strong> none recorded</p>".to_string()),
    }
    let footer = format!("<p>Ref: {}</p>", tag(&event.event_id));
    let mut body = p.join("");
    // Keep the tag whatever the length: cut the content, never the footer.
    let budget = max_chars.saturating_sub(footer.chars().count() + 1);
    if body.chars().count() > budget {
        body = body
            .chars()
            .take(budget.saturating_sub(1))
            .collect::<String>()
            + "…";
    }
    body + &footer
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::*;

    fn event() -> LeadEvent {
        serde_json::from_value(serde_json::json!({
            "event_id": "evt_1", "event_type": "lead.created", "occurred_at": "2026-05-04T11:23:45Z",
            "bot_id": "bot_a", "visitor": {"email": "a@b.co"},
            "context": {"source_url": "https://x.co/pricing", "utm_source": "google"},
            "transcript": {"summary": "<script>alert(1)</script> wants Pro"},
            "answers": {"budget": "50k"}
        }))
        .unwrap()
    }

    #[test]
    fn note_carries_summary_utm_consent_and_tag_with_html_escaped() {
        let html = render_html(&event(), 65_536);
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; wants Pro"));
        assert!(!html.contains("<script>"));
        assert!(html.contains("utm_source=google"));
        assert!(html.contains("Entry page:</strong> https://x.co/pricing"));
        assert!(html.contains("budget: 50k"));
        assert!(html.contains("Consent:</strong> none recorded"));
        assert!(html.ends_with("<p>Ref: leadbridge-event:evt_1</p>"));
    }

    #[test]
    fn a_tag_matches_its_own_event_only() {
        let id = |s: &str| EventId::parse(s).unwrap();
        let note_of = |s: &str| format!("<p>Ref: {}</p>", tag(&id(s)));
        assert!(carries_tag(&note_of("evt_1"), &id("evt_1")));
        assert!(!carries_tag(&note_of("evt_10"), &id("evt_1")));
        assert!(!carries_tag(&note_of("evt_1.2"), &id("evt_1")));
        assert!(!carries_tag(&note_of("evt_1:x"), &id("evt_1")));
        assert!(!carries_tag(&note_of("evt_1"), &id("evt_10")));
        // at the very end (a deal description), and after another event's tag
        assert!(carries_tag("Ref: leadbridge-event:evt_1", &id("evt_1")));
        assert!(carries_tag(
            &format!("{}{}", note_of("evt_10"), note_of("evt_1")),
            &id("evt_1")
        ));
    }

    #[test]
    fn a_long_note_is_cut_but_keeps_its_tag() {
        let mut e = event();
        e.transcript.as_mut().unwrap().summary = Some("x".repeat(100_000));
        let html = render_html(&e, 1_000);
        assert!(html.chars().count() <= 1_000);
        assert!(html.contains(&tag(&e.event_id)));
    }
}
