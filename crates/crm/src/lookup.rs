//! What the adapters share when they look people up by number.

// One `Result<_, CrmError>` per item is the port's shape (see `hubspot::batch`).
#![allow(clippy::result_large_err)]

use std::future::Future;

use lb_domain::{ContactKey, Phone, QueuedLead};
use lb_pipeline::CrmError;

/// The lead's numbers to look up, as `(index into its identities, number)`:
/// its phone and its WhatsApp id as a phone (an email is matched by the upsert).
pub(crate) fn numbers(lead: &QueuedLead) -> Vec<(usize, Phone)> {
    lead.event
        .identities()
        .iter()
        .enumerate()
        .filter_map(|(i, k)| match k {
            ContactKey::Email(_) => None,
            ContactKey::Phone(p) => Some((i, p.clone())),
            ContactKey::WaId(w) => w.as_phone().map(|p| (i, p)),
        })
        .collect()
}

/// [`lb_pipeline::Crm::find_contacts_batch`] over one `search` of every
/// distinct number of the batch (`(number, record id)` pairs back): each
/// lead's identities mapped to the first record holding them (several are the
/// CRM's duplicates, not ours to pick). A failed search is every lead's answer.
pub(crate) async fn find_by_numbers<F, Fut>(
    leads: &[QueuedLead],
    search: F,
) -> Vec<Result<Vec<(usize, String)>, CrmError>>
where
    F: FnOnce(Vec<Phone>) -> Fut,
    Fut: Future<Output = Result<Vec<(Phone, String)>, CrmError>>,
{
    let numbers: Vec<Vec<(usize, Phone)>> = leads.iter().map(numbers).collect();
    let mut all: Vec<Phone> = numbers.iter().flatten().map(|(_, p)| p.clone()).collect();
    all.sort_by(|a, b| a.as_str().cmp(b.as_str()));
    all.dedup();
    if all.is_empty() {
        return vec![Ok(Vec::new()); leads.len()];
    }
    let found = match search(all).await {
        Ok(f) => f,
        Err(e) => return vec![Err(e); leads.len()],
    };
    let mut out = Vec::with_capacity(leads.len());
    for mine in &numbers {
        let records = mine
            .iter()
            .filter_map(|(i, number)| {
                found
                    .iter()
                    .find(|(p, _)| p == number)
                    .map(|(_, id)| (*i, id.clone()))
            })
            .collect();
        out.push(Ok(records));
    }
    out
}
