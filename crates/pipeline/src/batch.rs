//! Many leads per CRM call, with each lead's logic unchanged.
//!
//! The worker runs the message groups of one invocation side by side (one
//! flow per FIFO group, its messages in order). Each flow goes through the
//! same steps as a lone lead would (ledger, person lock, identity rule,
//! contact, note, deal); only its CRM calls that have a batch form
//! ([`Crm::batch_limit`] > 1), and the read of the ledger's memory of the
//! person's identities before them, go through the [`Gate`]: a call waits there
//! until every flow still running is waiting there too (no one else can
//! join the batch), or until a batch is full. Then the earliest step anyone
//! waits at goes out, one call per `(connection, kind)` carrying them all: a
//! lead without a phone that is already at the contact step waits for the
//! ones still searching, so that all of them share one upsert. Each flow gets its own item's
//! answer back, so one refused lead fails alone and every guarantee that
//! held per lead (one record per person, one note per event, the ordering
//! guard, exactly-once across crashes and replays) holds as it did: the
//! person's lock is still taken before the contact call and released after
//! it, per person.
//!
//! Waiting is not timed: a batch closes when nobody else is running, so the
//! same deliveries make the same batches whatever the machine's speed.

use std::sync::Mutex;

use tokio::sync::oneshot;

use crate::ports::{ContactRef, ContactUpsert, Crm, CrmError, ErrorClass, Ledger, PortError};
use lb_domain::QueuedLead;

/// In the order a flow meets them.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Kind {
    /// The ledger's memory of the person's identities (one read for all).
    Memory,
    Find,
    Upsert,
    Note,
    Deal,
}

enum Op {
    Memory(Vec<String>),
    Find(QueuedLead),
    Upsert(ContactUpsert),
    Note(String, QueuedLead),
    Deal(String, QueuedLead),
}

enum Answer {
    Memory(Result<Vec<Option<String>>, PortError>),
    Found(Result<Vec<(usize, String)>, CrmError>),
    Contact(Result<ContactRef, CrmError>),
    Id(Result<String, CrmError>),
}

struct Pending {
    op: Op,
    tx: oneshot::Sender<Answer>,
}

struct Queue<'c> {
    crm: &'c dyn Crm,
    ledger: &'c dyn Ledger,
    kind: Kind,
    items: Vec<Pending>,
}

struct State<'c> {
    /// Flows still running.
    active: usize,
    /// Flows waiting in a queue.
    parked: usize,
    queues: Vec<Queue<'c>>,
}

/// Where the CRM calls of one invocation's flows meet (see the module docs).
pub(crate) struct Gate<'c> {
    state: Mutex<State<'c>>,
    /// Where the flows' identity memory is read, together.
    ledger: &'c dyn Ledger,
}

impl<'c> Gate<'c> {
    /// A gate for `flows` flows running side by side, reading the identity
    /// memory from `ledger`.
    pub(crate) fn new(flows: usize, ledger: &'c dyn Ledger) -> Self {
        Self {
            state: Mutex::new(State {
                active: flows,
                parked: 0,
                queues: Vec::new(),
            }),
            ledger,
        }
    }

    /// What the ledger remembers for each of `hashes` on `crm`'s connection
    /// (see [`Ledger::identities`]). When `crm` batches, the flows' reads meet
    /// like their CRM calls: one call per connection for every flow waiting
    /// there (DynamoDB: one `BatchGetItem` per 100 keys).
    pub(crate) async fn identities(
        &self,
        crm: &'c dyn Crm,
        hashes: &[String],
    ) -> Result<Vec<Option<String>>, PortError> {
        if crm.batch_limit() <= 1 || hashes.is_empty() {
            return self.ledger.identities(crm.name(), hashes).await;
        }
        match self
            .submit(crm, Kind::Memory, Op::Memory(hashes.to_vec()))
            .await
        {
            Answer::Memory(r) => r,
            _ => Err(memory_lost()),
        }
    }

    /// A flow is done: the others need not wait for it any more.
    pub(crate) async fn leave(&self) {
        let ready = {
            let mut s = self.state.lock().expect("gate lock");
            s.active = s.active.saturating_sub(1);
            s.take_ready()
        };
        run(ready).await;
    }

    pub(crate) async fn find_contacts(
        &self,
        crm: &'c dyn Crm,
        lead: &QueuedLead,
    ) -> Result<Vec<(usize, String)>, CrmError> {
        if crm.batch_limit() <= 1 {
            return crm.find_contacts(lead).await;
        }
        match self.submit(crm, Kind::Find, Op::Find(lead.clone())).await {
            Answer::Found(r) => r,
            _ => Err(lost(crm)),
        }
    }

    pub(crate) async fn upsert_contact(
        &self,
        crm: &'c dyn Crm,
        item: ContactUpsert,
    ) -> Result<ContactRef, CrmError> {
        if crm.batch_limit() <= 1 || !crm.keeps_records() {
            return crm
                .upsert_contact(&item.lead, item.known_id.as_deref(), item.write)
                .await;
        }
        match self.submit(crm, Kind::Upsert, Op::Upsert(item)).await {
            Answer::Contact(r) => r,
            _ => Err(lost(crm)),
        }
    }

    pub(crate) async fn add_note(
        &self,
        crm: &'c dyn Crm,
        contact_id: &str,
        lead: &QueuedLead,
    ) -> Result<String, CrmError> {
        if crm.batch_limit() <= 1 {
            return crm.add_note(contact_id, lead).await;
        }
        let op = Op::Note(contact_id.to_string(), lead.clone());
        match self.submit(crm, Kind::Note, op).await {
            Answer::Id(r) => r,
            _ => Err(lost(crm)),
        }
    }

    pub(crate) async fn create_deal(
        &self,
        crm: &'c dyn Crm,
        contact_id: &str,
        lead: &QueuedLead,
    ) -> Result<String, CrmError> {
        if crm.batch_limit() <= 1 {
            return crm.create_deal(contact_id, lead).await;
        }
        let op = Op::Deal(contact_id.to_string(), lead.clone());
        match self.submit(crm, Kind::Deal, op).await {
            Answer::Id(r) => r,
            _ => Err(lost(crm)),
        }
    }

    async fn submit(&self, crm: &'c dyn Crm, kind: Kind, op: Op) -> Answer {
        let (tx, rx) = oneshot::channel();
        let ready = {
            let mut s = self.state.lock().expect("gate lock");
            let name = crm.name();
            let at = match s
                .queues
                .iter()
                .position(|q| q.kind == kind && q.crm.name() == name)
            {
                Some(at) => at,
                None => {
                    s.queues.push(Queue {
                        crm,
                        ledger: self.ledger,
                        kind,
                        items: Vec::new(),
                    });
                    s.queues.len() - 1
                }
            };
            s.queues[at].items.push(Pending { op, tx });
            s.parked += 1;
            s.take_ready()
        };
        if !ready.is_empty() {
            run(ready).await;
            // The flows this call answered go on first, in their order, so
            // that the next batch holds them as the messages came.
            tokio::task::yield_now().await;
        }
        match rx.await {
            Ok(answer) => answer,
            // The batch call that held this item was dropped (the invocation is ending).
            Err(_) if kind == Kind::Memory => Answer::Memory(Err(memory_lost())),
            Err(_) => Answer::Id(Err(lost(crm))),
        }
    }
}

impl<'c> State<'c> {
    /// The batches to send now: the full ones, and once no running flow is
    /// left to join them, the queues of the earliest step any flow waits at
    /// (the flows it releases may join the later steps' queues).
    fn take_ready(&mut self) -> Vec<Queue<'c>> {
        let everyone_waits = self.parked > 0 && self.parked >= self.active;
        let earliest = self
            .queues
            .iter()
            .filter(|q| !q.items.is_empty())
            .map(|q| q.kind)
            .min();
        let mut ready = Vec::new();
        let mut i = 0;
        while i < self.queues.len() {
            let full = self.queues[i].items.len() >= self.queues[i].limit();
            if (everyone_waits && Some(self.queues[i].kind) == earliest) || full {
                let q = self.queues.swap_remove(i);
                self.parked -= q.items.len();
                ready.push(q);
            } else {
                i += 1;
            }
        }
        ready
    }
}

impl Queue<'_> {
    /// Items per call: the CRM's batch size; any number of identity reads
    /// (the ledger splits them as its store needs).
    fn limit(&self) -> usize {
        match self.kind {
            Kind::Memory => usize::MAX,
            _ => self.crm.batch_limit().max(1),
        }
    }
}

fn memory_lost() -> PortError {
    PortError::new("the identity read carrying this lead did not answer")
}

fn lost(crm: &dyn Crm) -> CrmError {
    CrmError::new(
        crm.name(),
        ErrorClass::Transient,
        None,
        "the batch call carrying this lead did not answer",
    )
}

/// Sends each ready queue in chunks of the CRM's batch size and hands every
/// item its own answer. Queues go side by side; a queue's chunks in order.
async fn run(ready: Vec<Queue<'_>>) {
    if ready.is_empty() {
        return;
    }
    futures_util::future::join_all(ready.into_iter().map(send)).await;
}

async fn send(q: Queue<'_>) {
    let limit = q.limit();
    let mut items = q.items;
    while !items.is_empty() {
        let rest = items.split_off(limit.min(items.len()));
        let chunk = std::mem::replace(&mut items, rest);
        let (ops, txs): (Vec<Op>, Vec<_>) = chunk.into_iter().map(|p| (p.op, p.tx)).unzip();
        let answers = call(q.crm, q.ledger, q.kind, ops).await;
        let n = txs.len();
        let mut answers = answers.into_iter();
        for tx in txs {
            // A receiver gone is a flow that was dropped; nothing to tell.
            let _ = tx.send(
                answers
                    .next()
                    .unwrap_or_else(|| Answer::Id(Err(short_answer(q.crm, n)))),
            );
        }
    }
}

fn short_answer(crm: &dyn Crm, n: usize) -> CrmError {
    CrmError::new(
        crm.name(),
        ErrorClass::Transient,
        None,
        format!("the batch call answered fewer than its {n} items"),
    )
}

async fn call(crm: &dyn Crm, ledger: &dyn Ledger, kind: Kind, ops: Vec<Op>) -> Vec<Answer> {
    match kind {
        Kind::Memory => {
            let asked: Vec<Vec<String>> = ops
                .into_iter()
                .filter_map(|o| match o {
                    Op::Memory(h) => Some(h),
                    _ => None,
                })
                .collect();
            let all: Vec<String> = asked.iter().flatten().cloned().collect();
            match ledger.identities(crm.name(), &all).await {
                Ok(found) if found.len() == all.len() => {
                    let mut found = found.into_iter();
                    asked
                        .iter()
                        .map(|h| Answer::Memory(Ok(found.by_ref().take(h.len()).collect())))
                        .collect()
                }
                Ok(_) => asked
                    .iter()
                    .map(|_| {
                        Answer::Memory(Err(PortError::new(
                            "the ledger answered the identity read short",
                        )))
                    })
                    .collect(),
                Err(e) => asked
                    .iter()
                    .map(|_| Answer::Memory(Err(e.clone())))
                    .collect(),
            }
        }
        Kind::Find => {
            let leads: Vec<QueuedLead> = ops
                .into_iter()
                .filter_map(|o| match o {
                    Op::Find(l) => Some(l),
                    _ => None,
                })
                .collect();
            let found = crm.find_contacts_batch(&leads).await;
            found.into_iter().map(Answer::Found).collect()
        }
        Kind::Upsert => {
            let items: Vec<ContactUpsert> = ops
                .into_iter()
                .filter_map(|o| match o {
                    Op::Upsert(u) => Some(u),
                    _ => None,
                })
                .collect();
            let written = crm.upsert_contacts(&items).await;
            written.into_iter().map(Answer::Contact).collect()
        }
        Kind::Note | Kind::Deal => {
            let items: Vec<(String, QueuedLead)> = ops
                .into_iter()
                .filter_map(|o| match o {
                    Op::Note(c, l) | Op::Deal(c, l) => Some((c, l)),
                    _ => None,
                })
                .collect();
            let ids = if kind == Kind::Note {
                crm.add_notes(&items).await
            } else {
                crm.create_deals(&items).await
            };
            ids.into_iter().map(Answer::Id).collect()
        }
    }
}
