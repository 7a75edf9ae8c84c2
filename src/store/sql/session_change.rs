//! Changes of live sessions' data in batches (group commit): one statement takes the batch's
//! rows in id hash order, the changes apply in memory in the order they were submitted, and one
//! statement writes the changed rows back — so concurrent batches never wait on each other in
//! a cycle, and several changes of one session in a batch apply in turn.

use super::params::{query, Params};
use super::session::{row_of, BY_ID, FROM, ROWS_PER_STATEMENT};
use super::{classify, SqlStore};
use crate::store::session::{ChangeJob, Changed, SessionRow};
use crate::store::StoreError;

impl SqlStore {
    /// Changes live sessions (group commit), one transaction for the batch: the rows are
    /// taken in one statement, in id hash order (so concurrent batches never wait
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
        keys.sort_unstable_by(|a, b| (a.1, a.0).cmp(&(b.1, b.0)));
        keys.dedup();
        let mut rows = std::collections::HashMap::new();
        for chunk in keys.chunks(ROWS_PER_STATEMENT) {
            // By id hash alone (the key of the table); a row of another tenant is never
            // matched below, as the map is keyed by both.
            let mut p = Params::new();
            let wanted: Vec<String> = chunk.iter().map(|(_, id)| p.text(id)).collect();
            let lock = if self.sqlite { "" } else { " FOR UPDATE OF s" };
            let sql = format!(
                "{BY_ID}{FROM}WHERE s.id_hash IN ({}) ORDER BY s.id_hash{lock}",
                wanted.join(",")
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
        // Every changed row exists and is taken: the upsert only updates.
        let changed: Vec<(SessionRow, &str)> = changed
            .iter()
            .filter_map(|k| rows.get(k))
            .map(|r| (r.clone(), ""))
            .collect();
        let conflict = " ON CONFLICT (id_hash) DO UPDATE SET data = excluded.data, \
             version = excluded.version";
        self.write_sessions(&mut tx, &changed, conflict).await?;
        tx.commit().await.map_err(classify)?;
        Ok(out)
    }
}
