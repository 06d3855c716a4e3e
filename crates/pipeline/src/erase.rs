//! `leadbridge erase`: the right to erasure (GDPR Art. 17) on leadbridge's side.
//! Everything the ledger and the dead-letter queue keep of one person goes; the
//! CRM's copy is the CRM's to erase (leadbridge prints the record ids to do it).

use std::collections::BTreeSet;

use lb_domain::ContactKey;

use crate::ports::{Erased, LeadQueue, Ledger, PortError};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErasureReport {
    pub ledger: Erased,
    pub dead_letters: usize,
}

impl ErasureReport {
    /// What was removed, for a person to read (no identity in it).
    pub fn render(&self) -> String {
        let l = &self.ledger;
        let mut out = format!(
            "erased from the ledger: {} deliveries, {} identity link(s), {} CRM record item(s), {} possible-duplicate record(s)\n\
             erased from the dead-letter queue: {} message(s)\n",
            l.deliveries.len(),
            l.identity_links,
            l.records,
            l.conflicts,
            self.dead_letters
        );
        for d in &l.deliveries {
            out.push_str(&format!("  delivery {d}\n"));
        }
        out.push_str(
            "The CRM's records are the CRM's to erase (HubSpot: delete the contact and its notes, or use its GDPR delete).\n",
        );
        out
    }
}

/// One person's identity hashes and `(connection, record)`s: the hashes asked,
/// the records they are linked to, and every identity linked to those records,
/// to a fixpoint. `links` are `(connection, identity hash, record)` as a ledger
/// keeps them. (Shared by every [`Ledger::erase_person`].)
pub type Person = (BTreeSet<String>, BTreeSet<(String, String)>);

pub fn person_of(links: &[(String, String, String)], asked: &[String]) -> Person {
    let mut hashes: BTreeSet<String> = asked.iter().cloned().collect();
    let mut records: BTreeSet<(String, String)> = BTreeSet::new();
    loop {
        let before = (hashes.len(), records.len());
        for (crm, hash, record) in links {
            let key = (crm.clone(), record.clone());
            if hashes.contains(hash) {
                records.insert(key.clone());
            }
            if records.contains(&key) {
                hashes.insert(hash.clone());
            }
        }
        if (hashes.len(), records.len()) == before {
            return (hashes, records);
        }
    }
}

/// Whether a queue message body is a lead carrying any of these identity hashes.
pub fn carries_any(body: &str, key_hashes: &[String]) -> bool {
    lb_domain::QueuedLead::from_json(body).is_ok_and(|l| {
        l.event
            .identities()
            .iter()
            .any(|k| key_hashes.contains(&k.hashed()))
    })
}

/// Erases the person known by `identities` (any of them) from the ledger and
/// the dead-letter queue.
pub async fn erase_person(
    ledger: &dyn Ledger,
    queue: &dyn LeadQueue,
    identities: &[ContactKey],
) -> Result<ErasureReport, PortError> {
    let hashes: Vec<String> = identities.iter().map(ContactKey::hashed).collect();
    let erased = ledger.erase_person(&hashes).await?;
    let dead_letters = queue.erase_dead_letters(&erased.key_hashes).await?;
    Ok(ErasureReport {
        ledger: erased,
        dead_letters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fakes::*;
    use crate::ports::*;
    use chrono::Utc;

    #[tokio::test]
    async fn a_person_goes_with_every_identity_linked_to_their_records_and_nobody_else() {
        let (ledger, queue) = (InMemoryLedger::default(), InMemoryQueue::default());
        let priya = sample_person("evt_1", Some("priya@acme.in"), Some("+14155552671"), None);
        let priya_phone_only = sample_person("evt_2", None, Some("+14155552671"), None);
        let other = sample_person("evt_3", Some("sam@x.io"), None, None);
        let now = Utc::now();
        for l in [&priya, &priya_phone_only, &other] {
            ledger.record_received(l, &l.to_json(), now).await.unwrap();
        }
        // the worker linked priya's email and phone to record c1, sam's email to c2
        for k in priya.event.identities() {
            ledger.seed_identity("hubspot", &k.hashed(), "c1");
        }
        ledger.seed_identity("hubspot", &other.contact_key.hashed(), "c2");
        queue
            .dead_letter(&DeadLetter {
                body: priya_phone_only.to_json(),
                group_id: "g".into(),
                dedup_id: "d".into(),
                event_id: Some("evt_2".into()),
                attempts: 1,
                reason: permanent("x").reason(),
            })
            .await
            .unwrap();
        // asked by email only: the phone-only event goes too (same record)
        let email = ContactKey::Email(lb_domain::Email::parse("Priya@acme.in").unwrap());
        let report = erase_person(&ledger, &queue, &[email]).await.unwrap();
        assert_eq!(report.ledger.deliveries, vec!["evt_1", "evt_2"]);
        assert_eq!(report.ledger.identity_links, 2);
        assert_eq!(report.dead_letters, 1);
        assert!(ledger.record("evt_1").is_none() && ledger.record("evt_2").is_none());
        assert!(ledger.record("evt_3").is_some(), "nobody else");
        assert_eq!(
            ledger
                .identities("hubspot", &[other.contact_key.hashed()])
                .await
                .unwrap(),
            vec![Some("c2".to_string())]
        );
        assert!(queue.dead_letters().is_empty());
        let text = report.render();
        assert!(
            !text.contains("priya") && !text.contains("4155552671"),
            "{text}"
        );
        // again: nothing left
        let again = erase_person(
            &ledger,
            &queue,
            &[ContactKey::Phone(
                lb_domain::Phone::parse("+14155552671", None).unwrap(),
            )],
        )
        .await
        .unwrap();
        assert!(again.ledger.deliveries.is_empty() && again.dead_letters == 0);
    }
}
