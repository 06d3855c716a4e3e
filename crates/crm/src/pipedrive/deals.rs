//! The company's pipelines and stages (`GET /api/v2/pipelines`, `GET
//! /api/v2/stages`, [V] SDK `v2/api/pipelines-api.ts`, `stages-api.ts`),
//! read once and reused for ten minutes, so that a deal's pipeline and stage
//! are checked before anything is written for the event.
//!
//! A route names them by id (`"3"`) or by name (`"Qualified"`, any case), as
//! the admin sees them in Pipedrive. A stage without a pipeline is looked
//! for in every pipeline and must be unambiguous; with one, in that
//! pipeline only. Deleted pipelines and stages do not count.

use std::time::{Duration, Instant};

use lb_domain::QueuedLead;
use lb_pipeline::CrmError;
use reqwest::Method;
use serde_json::Value;

use super::{enc, id_of, next_cursor, PipedriveCrm, PAGE};

/// How long a read of the pipelines is reused.
const TTL: Duration = Duration::from_secs(600);

#[derive(Debug, Clone)]
pub(super) struct Pipelines {
    /// `(id, name)` of each pipeline.
    pipelines: Vec<(u64, String)>,
    /// `(id, name, pipeline id)` of each stage, in order.
    stages: Vec<(u64, String, u64)>,
}

#[derive(Default)]
pub(super) struct PipelineCache(tokio::sync::Mutex<Option<(Instant, Pipelines)>>);

/// Where the event's deal goes: `None` leaves the choice to Pipedrive (the
/// default pipeline's first stage).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct DealTarget {
    pub pipeline: Option<u64>,
    pub stage: Option<u64>,
}

fn matches(wanted: &str, id: u64, name: &str) -> bool {
    let w = wanted.trim();
    w.parse::<u64>().ok() == Some(id) || name.trim().eq_ignore_ascii_case(w)
}

impl Pipelines {
    /// The event's pipeline and stage as ids, or why not.
    fn resolve(&self, pipeline: Option<&str>, stage: Option<&str>) -> Result<DealTarget, String> {
        let pipeline_id = match pipeline {
            None => None,
            Some(p) => match self
                .pipelines
                .iter()
                .find(|(id, name)| matches(p, *id, name))
            {
                Some((id, _)) => Some(*id),
                None => {
                    let known: Vec<String> = self
                        .pipelines
                        .iter()
                        .map(|(id, n)| format!("{n} ({id})"))
                        .collect();
                    return Err(format!(
                        "deal pipeline {p:?} is not one of Pipedrive's pipelines ({}); nothing was written",
                        known.join(", ")
                    ));
                }
            },
        };
        let Some(stage) = stage else {
            return Ok(DealTarget {
                pipeline: pipeline_id,
                stage: None,
            });
        };
        let candidates: Vec<&(u64, String, u64)> = self
            .stages
            .iter()
            .filter(|(_, _, p)| pipeline_id.is_none_or(|want| *p == want))
            .collect();
        let found: Vec<&&(u64, String, u64)> = candidates
            .iter()
            .filter(|(id, name, _)| matches(stage, *id, name))
            .collect();
        let list = || {
            candidates
                .iter()
                .map(|(id, n, _)| format!("{n} ({id})"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let within = match pipeline {
            Some(p) => format!("pipeline {p:?}"),
            None => "any pipeline".to_string(),
        };
        match found.as_slice() {
            [(id, _, p)] => Ok(DealTarget {
                pipeline: Some(*p),
                stage: Some(*id),
            }),
            [] => Err(format!(
                "deal stage {stage:?} is not a stage of {within} (stages: {}); nothing was written",
                list()
            )),
            _ => Err(format!(
                "deal stage {stage:?} names stages of several pipelines; name the pipeline \
                 (crm_target.deal_pipeline) or use the stage's id (stages: {}); nothing was written",
                list()
            )),
        }
    }
}

impl PipedriveCrm {
    /// Every live item of a v2 list, every page.
    async fn list_all(&self, path: &str) -> Result<Vec<Value>, CrmError> {
        let mut out = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut p = format!("{path}?limit={PAGE}");
            if let Some(c) = &cursor {
                p.push_str(&format!("&cursor={}", enc(c)));
            }
            let v = self.call(Method::GET, &p, None).await?;
            out.extend(
                v["data"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter(|x| x["is_deleted"] != true)
                    .cloned(),
            );
            match next_cursor(&v, cursor.as_deref()) {
                Some(c) => cursor = Some(c),
                None => return Ok(out),
            }
        }
    }

    async fn pipelines(&self) -> Result<Pipelines, CrmError> {
        let mut slot = self.pipelines.0.lock().await;
        if let Some((at, p)) = slot.as_ref() {
            if at.elapsed() < TTL {
                return Ok(p.clone());
            }
        }
        let named = |v: &Value| Some((id_of(&v["id"])?, v["name"].as_str()?.to_string()));
        let pipelines = self
            .list_all("/api/v2/pipelines")
            .await?
            .iter()
            .filter_map(named)
            .collect();
        let stages = self
            .list_all("/api/v2/stages")
            .await?
            .iter()
            .filter_map(|s| {
                let (id, name) = named(s)?;
                Some((id, name, id_of(&s["pipeline_id"])?))
            })
            .collect();
        let p = Pipelines { pipelines, stages };
        *slot = Some((Instant::now(), p.clone()));
        Ok(p)
    }

    /// The event's deal pipeline and stage as Pipedrive ids, checked against
    /// the company's pipelines: an unknown one is a permanent
    /// `bad_deal_stage` error naming it.
    pub(super) async fn deal_target(&self, lead: &QueuedLead) -> Result<DealTarget, CrmError> {
        let t = &lead.event.crm_target;
        if t.deal_pipeline.is_none() && t.deal_stage.is_none() {
            return Ok(DealTarget::default());
        }
        self.pipelines()
            .await?
            .resolve(t.deal_pipeline.as_deref(), t.deal_stage.as_deref())
            .map_err(|message| {
                CrmError::refused(&self.cfg.name, crate::deal::BAD_DEAL_STAGE, message)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> Pipelines {
        Pipelines {
            pipelines: vec![(1, "Sales".into()), (2, "Partners".into())],
            stages: vec![
                (1, "Lead In".into(), 1),
                (2, "Qualified".into(), 1),
                (7, "Lead In".into(), 2),
                (8, "Signed".into(), 2),
            ],
        }
    }

    #[test]
    fn stages_and_pipelines_are_found_by_id_or_name_in_any_case() {
        let p = company();
        let t = |pl: Option<&str>, st: Option<&str>| p.resolve(pl, st);
        assert_eq!(
            t(None, Some("qualified")),
            Ok(DealTarget {
                pipeline: Some(1),
                stage: Some(2)
            })
        );
        assert_eq!(
            t(Some("Partners"), Some("lead in")),
            Ok(DealTarget {
                pipeline: Some(2),
                stage: Some(7)
            })
        );
        assert_eq!(
            t(None, Some("8")),
            Ok(DealTarget {
                pipeline: Some(2),
                stage: Some(8)
            })
        );
        assert_eq!(
            t(Some("2"), None),
            Ok(DealTarget {
                pipeline: Some(2),
                stage: None
            })
        );
    }

    #[test]
    fn an_unknown_or_ambiguous_stage_is_refused_naming_it_and_the_choices() {
        let p = company();
        let e = p.resolve(None, Some("Won")).unwrap_err();
        assert!(e.contains("\"Won\"") && e.contains("Qualified (2)"), "{e}");
        let e = p.resolve(Some("Sales"), Some("Signed")).unwrap_err();
        assert!(
            e.contains("pipeline \"Sales\"") && !e.contains("Signed (8)"),
            "{e}"
        );
        let e = p.resolve(None, Some("Lead In")).unwrap_err();
        assert!(e.contains("several pipelines"), "{e}");
        let e = p.resolve(Some("Nope"), Some("Lead In")).unwrap_err();
        assert!(e.contains("\"Nope\"") && e.contains("Partners (2)"), "{e}");
    }
}
