//! Plans a page at a time and events after a known one: what a client that
//! follows the store over a network asks for (the service's lists, its
//! event stream).

use sqlx::Row;

use super::plans::{plan_from_row, PLAN_COLUMNS};
use super::{Store, StoreError};
use crate::model::{EventRecord, PlanRecord, State, Status};

/// Which plans a page holds. Every field left `None` matches all.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlanFilter {
    /// Only plans in this phase (`strategize`, `execute`, `apply`).
    pub phase: Option<String>,
    /// Only plans in this state (`queued`, `processing`, …).
    pub state: Option<String>,
    /// Only plans of this project id.
    pub project_id: Option<String>,
}

/// One page of plans, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanPage {
    /// The plans.
    pub plans: Vec<PlanRecord>,
    /// The position after the last plan, when there are more.
    pub next: Option<(i64, String)>,
}

/// A project plans were made on, as the plans record it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanProject {
    /// The project's id (the lock scope of `project:<id>`).
    pub id: String,
    /// Its root directory.
    pub root: String,
}

/// How many plans a project has, and how many of them are unfinished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProjectPlans {
    /// The project's id.
    pub project_id: String,
    /// Its plans.
    pub plans: usize,
    /// Those neither applied nor cancelled.
    pub active: usize,
}

/// An event with its position in the whole history (ids only grow).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EventEntry {
    /// The event's id: resume after it.
    pub id: i64,
    /// The plan it belongs to.
    pub plan_id: String,
    /// The event.
    #[serde(flatten)]
    pub event: EventRecord,
}

impl Store {
    /// Up to `limit` plans matching `filter`, newest first, starting after
    /// `after` (the `(created_at, id)` of the last plan of the page before).
    pub async fn plans_page(
        &self,
        filter: &PlanFilter,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<PlanPage, StoreError> {
        let mut sql = format!("SELECT {PLAN_COLUMNS} FROM plans WHERE 1 = 1");
        let mut n = 0;
        let mut next = |sql: &mut String, clause: &str| {
            n += 1;
            sql.push_str(&clause.replace('?', &format!("${n}")));
        };
        let wanted = [
            (&filter.phase, " AND phase = ?"),
            (&filter.state, " AND state = ?"),
            (&filter.project_id, " AND project_id = ?"),
        ];
        for (value, clause) in &wanted {
            if value.is_some() {
                next(&mut sql, clause);
            }
        }
        if after.is_some() {
            next(&mut sql, " AND (created_at < ?");
            next(&mut sql, " OR (created_at = ?");
            next(&mut sql, " AND id > ?))");
        }
        sql.push_str(&format!(
            " ORDER BY created_at DESC, id LIMIT {}",
            limit.saturating_add(1)
        ));
        let mut query = sqlx::query(&sql);
        for value in wanted.iter().filter_map(|(v, _)| v.as_ref()) {
            query = query.bind(value.clone());
        }
        if let Some((at, id)) = &after {
            query = query.bind(*at).bind(*at).bind(id.clone());
        }
        let rows = query.fetch_all(self.db().reader()).await?;
        let mut plans = rows
            .iter()
            .map(plan_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        let next = if plans.len() > limit {
            plans.truncate(limit);
            plans.last().map(|p| (p.created_at, p.id.clone()))
        } else {
            None
        };
        Ok(PlanPage { plans, next })
    }

    /// How many plans are in each state, over every plan or over the plans
    /// of one project; states without plans are left out.
    pub async fn plan_counts(
        &self,
        project_id: Option<&str>,
    ) -> Result<Vec<(State, usize)>, StoreError> {
        let which = if project_id.is_some() {
            "WHERE project_id = $1"
        } else {
            ""
        };
        let sql = format!("SELECT state, COUNT(*) AS n FROM plans {which} GROUP BY state");
        let mut query = sqlx::query(&sql);
        if let Some(id) = project_id {
            query = query.bind(id.to_string());
        }
        let rows = query.fetch_all(self.db().reader()).await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get("state")?;
                let n: i64 = r.try_get("n")?;
                let state = state
                    .parse()
                    .map_err(|e| StoreError::corrupt(format!("plan state `{state}`"), e))?;
                Ok((state, usize::try_from(n).unwrap_or(0)))
            })
            .collect()
    }

    /// Every project that has plans, by root.
    pub async fn plan_projects(&self) -> Result<Vec<PlanProject>, StoreError> {
        let rows = sqlx::query(
            "SELECT DISTINCT project_id, project_root FROM plans ORDER BY project_root, project_id",
        )
        .fetch_all(self.db().reader())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(PlanProject {
                    id: r.try_get("project_id")?,
                    root: r.try_get("project_root")?,
                })
            })
            .collect()
    }

    /// Every project's plans and unfinished plans, counted by the database.
    pub async fn plans_per_project(&self) -> Result<Vec<ProjectPlans>, StoreError> {
        let sql = format!(
            "SELECT project_id, COUNT(*) AS n,
                    SUM(CASE WHEN state IN ('{}', '{}') THEN 0 ELSE 1 END) AS active
             FROM plans GROUP BY project_id",
            State::Applied,
            State::Cancelled
        );
        let rows = sqlx::query(&sql).fetch_all(self.db().reader()).await?;
        let count = |n: i64| usize::try_from(n).unwrap_or(0);
        rows.iter()
            .map(|r| {
                Ok(ProjectPlans {
                    project_id: r.try_get("project_id")?,
                    plans: count(r.try_get("n")?),
                    active: count(r.try_get("active")?),
                })
            })
            .collect()
    }

    /// Up to `limit` events with an id above `after`, oldest first: of one
    /// plan, or of every plan.
    pub async fn events_after(
        &self,
        plan_id: Option<&str>,
        after: i64,
        limit: usize,
    ) -> Result<Vec<EventEntry>, StoreError> {
        let which = if plan_id.is_some() {
            "plan_id = $2 AND"
        } else {
            ""
        };
        let sql = format!(
            "SELECT id, plan_id, at, actor, from_phase, from_state, to_phase, to_state, reason
             FROM plan_events WHERE {which} id > $1 ORDER BY id LIMIT {limit}"
        );
        let mut query = sqlx::query(&sql).bind(after);
        if let Some(plan) = plan_id {
            query = query.bind(plan.to_string());
        }
        let rows = query.fetch_all(self.db().reader()).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The id of the newest event (0 when there is none).
    pub async fn last_event_id(&self) -> Result<i64, StoreError> {
        let id: Option<i64> = sqlx::query_scalar("SELECT MAX(id) FROM plan_events")
            .fetch_one(self.db().reader())
            .await?;
        Ok(id.unwrap_or(0))
    }
}

fn event_from_row(r: &sqlx::any::AnyRow) -> Result<EventEntry, StoreError> {
    let plan_id: String = r.try_get("plan_id")?;
    let bad = |e| StoreError::corrupt(format!("event status of plan `{plan_id}`"), e);
    let status = |p: Option<String>, s: Option<String>| -> Result<Option<Status>, StoreError> {
        match p.zip(s) {
            Some((p, s)) => Ok(Some(Status::new(
                p.parse().map_err(bad)?,
                s.parse().map_err(bad)?,
            ))),
            None => Ok(None),
        }
    };
    let to = status(r.try_get("to_phase")?, r.try_get("to_state")?)?
        .ok_or_else(|| StoreError::corrupt(format!("event of plan `{plan_id}`"), "no status"))?;
    Ok(EventEntry {
        id: r.try_get("id")?,
        event: EventRecord {
            at: r.try_get("at")?,
            actor: r.try_get("actor")?,
            from: status(r.try_get("from_phase")?, r.try_get("from_state")?)?,
            to,
            reason: r.try_get("reason")?,
        },
        plan_id,
    })
}
