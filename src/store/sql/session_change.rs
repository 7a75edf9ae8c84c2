//! Changes of live sessions' data in batches (group commit): one statement takes the batch's
//! rows in key order, the changes apply in memory in the order they were submitted, and one
//! statement writes the changed rows back — so concurrent batches never wait on each other in
//! a cycle, and several changes of one session in a batch apply in turn.

use super::params::{query, Params};
use super::session::{row_of, BY_ID, FROM, ROWS_PER_STATEMENT};
use super::{classify, SqlStore};
use crate::store::session::{ChangeJob, Changed, SessionRow};
use crate::store::StoreError;

impl SqlStore {
    /// Changes live sessions (group commit), one transaction for the batch: the rows are
    /// taken in one statement, in `(tenant, id hash)` order (so concurrent batches never wait
    /// on each other in a cycle), changed in memory in the order the changes were submitted
    /// (several of one session apply in turn), and written back in one statement.
    pub async fn session_change_batch(
        &self,
        jobs: Vec<ChangeJob>,
    ) -> Result<Vec<Changed>, StoreError> {
        let mut tx = self.begin_write().await?;
        let mut keys: Vec<(&str, &str)> = jobs
            .iter()
            .map(|j| (j.tenant.as_str(), j.id_hash.as_str()))
            .collect();
        keys.sort_unstable();
        keys.dedup();
        let mut rows = std::collections::HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let wanted: Vec<String> = chunk
                .iter()
                .map(|(t, id)| format!("(s.tenant = {} AND s.id_hash = {})", p.text(t), p.text(id)))
                .collect();
            let lock = if self.sqlite { "" } else { " FOR UPDATE OF s" };
            let sql = format!(
                "{BY_ID}{FROM}WHERE {} ORDER BY s.tenant, s.id_hash{lock}",
                wanted.join(" OR ")
            );
            for r in query(sql, &p.args)
                .fetch_all(&mut *tx)
                .await
                .map_err(classify)?
            {
                let row = row_of(&r)?;
                rows.insert((row.tenant.clone(), row.id_hash.clone()), row);
            }
        }
        let mut out = Vec::with_capacity(jobs.len());
        let mut changed = std::collections::BTreeSet::new();
        for job in jobs {
            let key = (job.tenant, job.id_hash);
            let Some(row) = rows.get_mut(&key) else {
                out.push(Changed::Refused(None));
                continue;
            };
            if row.standing(job.now) != crate::store::session::Standing::Active {
                out.push(Changed::Refused(Some(row.clone())));
                continue;
            }
            let Some((data, bump)) = (job.change)(row) else {
                out.push(Changed::Refused(Some(row.clone())));
                continue;
            };
            if bump {
                row.version += 1;
            }
            row.data = data;
            out.push(Changed::Done(row.clone()));
            changed.insert(key);
        }
        let changed: Vec<&SessionRow> = changed.iter().filter_map(|k| rows.get(k)).collect();
        for chunk in changed.chunks(ROWS_PER_STATEMENT) {
            let mut p = Params::new();
            let mut data = String::from("CASE");
            let mut version = String::from("CASE");
            let mut wanted = Vec::with_capacity(chunk.len());
            for r in chunk {
                let is = format!(
                    "(tenant = {} AND id_hash = {})",
                    p.text(&r.tenant),
                    p.text(&r.id_hash)
                );
                data.push_str(&format!(" WHEN {is} THEN {}", p.text(&r.data)));
                version.push_str(&format!(" WHEN {is} THEN {}", p.int(r.version)));
                wanted.push(is);
            }
            let sql = format!(
                "UPDATE warden_sessions SET data = {data} END, version = {version} END WHERE {}",
                wanted.join(" OR ")
            );
            query(sql, &p.args)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)?;
        Ok(out)
    }
}
