//! The one-shot commands (`warden token`, `warden evidence`, `warden reconcile`): each opens
//! the stores without supervising the tier, so a command never switches or arms the tier the
//! serving instances share, does its one thing through the domain services, and returns the
//! report for stdout.

use crate::access::Access;
use crate::config::{ms, Config};
use crate::guard::Guard;
use crate::reserve::Reservations;
use crate::service::open_unsupervised;
use crate::tier::TierName;

/// One reconciliation pass for `warden reconcile`: a report line per differing SKU. It opens
/// the stores without supervising the tier (see [`open_unsupervised`](crate::service)).
pub async fn reconcile(config: &Config, fix: bool) -> Result<String, String> {
    let tier = open_unsupervised(config, true).await?;
    let reservations = Reservations::start(tier.clone(), &config.reservations);
    let found = reservations.reconcile(fix).await;
    let tier_name = tier.status().tier.map_or("unknown", TierName::as_str);
    tier.durable().close().await;
    let tier = tier_name;
    let found = found.map_err(|b| format!("reconciliation blocked: {}", b.reason()))?;
    let mut report = format!("tier {tier}: {} mismatching sku(s)\n", found.len());
    for m in found {
        report.push_str(&format!(
            "{}: redis total {} reserved {} confirmed {} | sql total {} reserved {} confirmed {}{}\n",
            crate::key::for_operator(&m.sku),
            m.redis.total,
            m.redis.reserved,
            m.redis.confirmed,
            m.sql.total,
            m.sql.reserved,
            m.sql.confirmed,
            if m.fixed { " | fixed" } else { "" }
        ));
    }
    Ok(report)
}

/// What `warden token` does.
#[derive(Debug, Clone)]
pub enum TokenCommand {
    /// Creates a token and prints it once.
    Create(crate::access::NewToken),
    /// Prints every token (never a secret).
    List,
    /// Revokes a token by its id.
    Revoke(String),
}

/// Runs one `warden token` command against the configured database; the report for stdout.
/// It opens the database only (see [`open_unsupervised`](crate::service)).
pub async fn token(config: &Config, command: TokenCommand) -> Result<String, String> {
    let tier = open_unsupervised(config, false).await?;
    let mode = config.auth_mode().map_err(|e| e.to_string())?;
    let access = Access::start(tier.clone(), mode, ms(config.tier.lease_ms)).await;
    let blocked = |b: crate::tier::Blocked| format!("blocked: {}", b.reason());
    let actor = cli_actor();
    let report = match command {
        TokenCommand::Create(new) => access.create(new, &actor).await.map_err(blocked).map(|c| {
            format!(
                "{}\n# id {} name {} tenant {} scopes {} (the token is shown only now)\n",
                c.text, c.token.id, c.token.name, c.token.tenant, c.token.scopes
            )
        }),
        TokenCommand::List => access.list().await.map_err(blocked).map(|l| {
            l.0.iter()
                .map(|t| {
                    let state = if t.revoked_at != 0 {
                        "revoked"
                    } else {
                        "valid"
                    };
                    format!(
                        "{} {} tenant={} scopes={} {state}\n",
                        t.id, t.name, t.tenant, t.scopes
                    )
                })
                .collect()
        }),
        TokenCommand::Revoke(id) => match access.revoke(&id, &actor).await.map_err(blocked) {
            Ok(crate::access::Revoked::Revoked(t)) => Ok(format!("revoked {}\n", t.id)),
            Ok(crate::access::Revoked::Unknown) => Err(format!("no token with id {id}")),
            Err(e) => Err(e),
        },
    };
    tier.durable().close().await;
    report
}

/// The actor recorded for what a one-shot command does: `cli:<user>` (the operating system
/// user who ran it).
pub fn cli_actor() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    format!("cli:{user}")
}

/// The evidence pack of incident `id` (tenant `tenant`) for `warden evidence`, as JSON. It
/// opens the database only (see [`open_unsupervised`](crate::service)).
pub async fn evidence(config: &Config, tenant: &str, id: &str) -> Result<String, String> {
    let tier = open_unsupervised(config, false).await?;
    let guard = Guard::new(tier.clone(), config).map_err(|e| e.to_string())?;
    let found = guard.evidence(tenant, id).await;
    tier.durable().close().await;
    match found {
        Ok(Some(pack)) => serde_json::to_string_pretty(&pack)
            .map(|s| s + "\n")
            .map_err(|e| e.to_string()),
        Ok(None) => Err(format!("no incident {id} in tenant {tenant}")),
        Err(b) => Err(format!("blocked: {}", b.reason())),
    }
}
