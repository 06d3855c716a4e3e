//! What every CRM's deal is called and says: named after the visitor's
//! company (else their name) and the bot, described with the conversation's
//! summary and the event's tag, which a retry looks the deal up by.

use lb_domain::{note, QueuedLead};

/// The deal's stage or pipeline is not one the CRM's admin set up: nothing
/// was written for the event.
pub const BAD_DEAL_STAGE: &str = "bad_deal_stage";
/// The connection writes leads (Zoho Leads, Salesforce Leads), whose deals
/// come with conversion: nothing was written for the event.
pub const DEALS_NEED_CONTACTS: &str = "deals_need_contacts";

/// Whom the deal is with: the company, else the visitor's name, else "Chatbot lead".
pub(crate) fn who(lead: &QueuedLead) -> String {
    let v = &lead.event.visitor;
    [v.company.as_deref(), v.name.as_deref()]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|w| !w.is_empty())
        .unwrap_or("Chatbot lead")
        .to_string()
}

/// `"<who> (chatbot <bot>)"`, at most `max` characters (`usize::MAX`: no limit).
pub(crate) fn name(lead: &QueuedLead, max: usize) -> String {
    format!("{} (chatbot {})", who(lead), lead.event.bot_id.as_str())
        .chars()
        .take(max)
        .collect()
}

/// "Created by leadbridge from a <bot> conversation. Summary: … Ref: <tag>",
/// the summary cut to `summary_max` characters.
pub(crate) fn description(lead: &QueuedLead, summary_max: usize) -> String {
    let e = &lead.event;
    let mut d = format!(
        "Created by leadbridge from a {} conversation.",
        e.bot_id.as_str()
    );
    if let Some(s) = e.transcript.as_ref().and_then(|t| t.summary.as_deref()) {
        let s: String = s.chars().take(summary_max).collect();
        d.push_str(&format!(" Summary: {s}"));
    }
    d.push_str(&format!(" Ref: {}", note::tag(&e.event_id)));
    d
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn lead(visitor: serde_json::Value) -> QueuedLead {
        let event: lb_domain::LeadEvent = serde_json::from_value(json!({
            "event_id": "evt_d", "event_type": "lead.qualified",
            "occurred_at": "2026-05-04T11:23:45Z", "bot_id": "bot_x",
            "visitor": visitor, "transcript": {"summary": "Wants a demo"}
        }))
        .expect("event");
        QueuedLead::new(event, chrono::Utc::now()).expect("lead")
    }

    #[test]
    fn a_deal_is_named_after_the_company_else_the_person_and_tagged() {
        let l = lead(json!({"email": "a@b.co", "company": " ", "name": "Ana Silva"}));
        assert_eq!(name(&l, usize::MAX), "Ana Silva (chatbot bot_x)");
        assert_eq!(name(&l, 3), "Ana");
        let anon = lead(json!({"email": "a@b.co"}));
        assert_eq!(who(&anon), "Chatbot lead");
        assert_eq!(
            description(&l, 4),
            "Created by leadbridge from a bot_x conversation. Summary: Want Ref: leadbridge-event:evt_d"
        );
    }
}
