//! G5 under fault injection, through the real binary: racing workers commit 20 streams × 10
//! intents while Redis is SIGKILLed and restarted empty. Every stream ends fully committed,
//! strictly in order, each effect once; sequences continue from SQL after Redis comes back.

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::support::{fast_failover, metric, Postgres, Redis, Warden};
use serde_json::{json, Value};

const STREAMS: usize = 20;
const INTENTS: usize = 10;
const WORKERS: usize = 6;

/// One effect, as the worker that was told `committed_causal` saw it.
#[derive(Debug, Clone)]
struct Effect {
    stream: String,
    seq: i64,
    version: i64,
    intent_id: String,
    mode: String,
}

#[derive(Default)]
struct Record {
    effects: Vec<Effect>,
    /// Answers other than `committed_causal`, by state.
    others: HashMap<String, usize>,
    /// Intents claimed so far, and how many the workers may claim (the test moves the budget
    /// on as it kills and restarts Redis, so commits race through every phase).
    claimed: usize,
    budget: usize,
    /// Intents claimed, by the mode of the claim's answer.
    claimed_in: HashMap<String, usize>,
}

/// Commits one claimed intent, waiting for its turn; records the effect if this request is the
/// one told it committed.
async fn commit(w: Arc<Warden>, intent: Value, rec: Arc<Mutex<Record>>) {
    let stream = intent["stream"].as_str().unwrap().to_owned();
    let body = json!({"commit_sequence": intent["commit_sequence"], "intent_id": intent["intent_id"],
        "wait_ms": 20_000});
    let (s, v) = w.post(&format!("/v1/streams/{stream}/commits"), body).await;
    let mut rec = rec.lock().unwrap();
    match (s, v["state"].as_str()) {
        (200, Some("committed_causal")) => rec.effects.push(Effect {
            stream,
            seq: v["commit_sequence"].as_i64().unwrap(),
            version: v["version"].as_i64().unwrap(),
            intent_id: v["intent_id"].as_str().unwrap().to_owned(),
            mode: v["mode"].as_str().unwrap().to_owned(),
        }),
        (409, Some("blocked_conflict")) => {
            assert_eq!(v["reason"], "already_committed", "{v}");
            *rec.others.entry("already_committed".into()).or_default() += 1;
        }
        (202, _) | (503, _) => {
            *rec.others.entry(format!("{s}")).or_default() += 1;
        }
        other => panic!("unexpected commit answer {other:?}: {v}"),
    }
}

/// Claims and commits (each commit in its own task, so a worker never waits on itself; every
/// other one twice, racing) until every intent has been committed.
async fn worker(w: Arc<Warden>, id: usize, rec: Arc<Mutex<Record>>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut inflight = Vec::new();
    while rec.lock().unwrap().effects.len() < STREAMS * INTENTS {
        assert!(
            Instant::now() < deadline,
            "worker {id} gave up\n{}",
            w.tail_log()
        );
        let room = {
            let r = rec.lock().unwrap();
            r.budget.saturating_sub(r.claimed).min(4)
        };
        if room == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        }
        let body = json!({"worker": format!("w{id}"), "limit": room, "lease_ms": 1500});
        let (s, v) = w.post("/v1/dispatch/claim", body).await;
        let claimed = match s {
            200 => v["intents"].as_array().cloned().unwrap_or_default(),
            503 => Vec::new(),
            _ => panic!("claim answered {s}: {v}"),
        };
        {
            let mut r = rec.lock().unwrap();
            r.claimed += claimed.len();
            let mode = v["mode"].as_str().unwrap_or("none").to_owned();
            *r.claimed_in.entry(mode).or_default() += claimed.len();
        }
        if claimed.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        for (n, intent) in claimed.into_iter().enumerate() {
            // Every other intent is committed twice at once (a retry racing its original):
            // only one of the two may be told `committed_causal`.
            if n % 2 == 0 {
                let twin = commit(w.clone(), intent.clone(), rec.clone());
                inflight.push(tokio::spawn(twin));
            }
            inflight.push(tokio::spawn(commit(w.clone(), intent, rec.clone())));
        }
    }
    for t in inflight {
        t.await.unwrap();
    }
}

/// Lets the workers claim up to `budget` intents in all, and waits until they have.
async fn claim_up_to(rec: &Mutex<Record>, budget: usize) {
    rec.lock().unwrap().budget = budget;
    let deadline = Instant::now() + Duration::from_secs(60);
    while rec.lock().unwrap().claimed < budget.min(STREAMS * INTENTS) {
        assert!(Instant::now() < deadline, "stuck before {budget} claims");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_workers_commit_every_stream_in_order_while_redis_dies() {
    let pg = Postgres::database();
    let mut redis = Redis::start();
    let w = Arc::new(Warden::start(&fast_failover(&pg, Some(redis.url()))));
    w.wait_ready_on("redis", Duration::from_secs(10)).await;

    // Intake: each stream's 10 intents race each other, with scattered priorities.
    let mut calls = Vec::new();
    for s in 0..STREAMS {
        for i in 0..INTENTS {
            let w = w.clone();
            calls.push(tokio::spawn(async move {
                let body = json!({"intent_id": format!("i{i}"), "intent_type": "book",
                    "dispatch_priority": (i * 7 + s) % 5, "payload": {"s": s, "i": i}});
                let (st, v) = w.post(&format!("/v1/streams/st-{s}/intents"), body).await;
                assert_eq!((st, v["state"].as_str()), (201, Some("accepted")), "{v}");
                (
                    format!("st-{s}"),
                    format!("i{i}"),
                    v["commit_sequence"].as_i64().unwrap(),
                )
            }));
        }
    }
    let mut assigned: HashMap<(String, i64), String> = HashMap::new();
    for c in calls {
        let (stream, id, seq) = c.await.unwrap();
        assert!(
            assigned.insert((stream, seq), id).is_none(),
            "sequence reused"
        );
    }
    for s in 0..STREAMS {
        let seqs: BTreeSet<i64> = (1..=INTENTS as i64)
            .filter(|q| assigned.contains_key(&(format!("st-{s}"), *q)))
            .collect();
        assert_eq!(
            seqs.len(),
            INTENTS,
            "st-{s}: sequences 1..=10, none skipped"
        );
    }

    let rec = Arc::new(Mutex::new(Record::default()));
    let workers: Vec<_> = (0..WORKERS)
        .map(|i| tokio::spawn(worker(w.clone(), i, rec.clone())))
        .collect();
    claim_up_to(&rec, 60).await;
    redis.kill();
    // Commits race through the breaker filling, the switch, and the fallback tier.
    rec.lock().unwrap().budget = 100;
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    claim_up_to(&rec, 140).await;
    redis.restart();
    rec.lock().unwrap().budget = 170;
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    claim_up_to(&rec, STREAMS * INTENTS).await;
    for t in workers {
        t.await.unwrap();
    }

    let rec = std::mem::take(&mut *rec.lock().unwrap());
    let mut seen = BTreeSet::new();
    for e in &rec.effects {
        assert!(
            seen.insert((e.stream.clone(), e.seq)),
            "effect twice: {e:?}"
        );
        assert_eq!(e.version, e.seq, "effects apply in sequence order: {e:?}");
        assert_eq!(assigned[&(e.stream.clone(), e.seq)], e.intent_id, "{e:?}");
    }
    assert_eq!(seen.len(), STREAMS * INTENTS);
    // Intents were dispatched (and so committed) while the tier was SQL, between the switch
    // and Redis's return.
    let in_fallback = rec.claimed_in.get("fallback").copied().unwrap_or(0);
    assert!(in_fallback > 0, "claims by mode: {:?}", rec.claimed_in);
    let fallback = rec.effects.iter().filter(|e| e.mode == "fallback").count();
    println!(
        "claims by mode {:?}; effects answered on fallback: {fallback}; answers besides committed_causal: {:?}",
        rec.claimed_in, rec.others
    );

    for s in 0..STREAMS {
        let (st, v) = w.get(&format!("/v1/streams/st-{s}")).await;
        assert_eq!(st, 200, "{v}");
        let expect = json!({"next": 11, "last": 10, "version": 10, "waiting": []});
        let got = json!({"next": v["next_sequence"], "last": v["last_committed"],
            "version": v["version"], "waiting": v["waiting"]});
        assert_eq!(got, expect, "st-{s}");
    }

    // Back on Redis (restarted empty): counters continue from SQL, nothing reused or skipped,
    // and a duplicate is still refused.
    w.wait_ready_on("redis", Duration::from_secs(15)).await;
    let body = json!({"intent_id": "after", "intent_type": "book"});
    let (s, v) = w.post("/v1/streams/st-0/intents", body).await;
    assert_eq!((s, v["commit_sequence"].as_i64()), (201, Some(11)), "{v}");
    assert_eq!(v["mode"], "primary");
    let first = &assigned[&("st-0".to_owned(), 1)];
    let body = json!({"commit_sequence": 1, "intent_id": first});
    let (s, v) = w.post("/v1/streams/st-0/commits", body).await;
    assert_eq!(
        (s, v["reason"].as_str()),
        (409, Some("already_committed")),
        "{v}"
    );
    let body = json!({"commit_sequence": 11, "intent_id": "after"});
    let (s, v) = w.post("/v1/streams/st-0/commits", body).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(11)), "{v}");
}

/// A Warden killed mid-stream loses nothing acknowledged: after a restart, sequences and
/// commits continue exactly where SQL says they were.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_continues_from_sql() {
    let pg = Postgres::database();
    let mut w = Warden::start(&fast_failover(&pg, None));
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    for i in 1..=5 {
        let body = json!({"intent_id": format!("k{i}"), "intent_type": "book"});
        let (s, v) = w.post("/v1/streams/k/intents", body).await;
        assert_eq!((s, v["commit_sequence"].as_i64()), (201, Some(i)), "{v}");
    }
    for i in [1, 2, 4] {
        let body = json!({"commit_sequence": i, "intent_id": format!("k{i}")});
        w.post("/v1/streams/k/commits", body).await;
    }
    w.kill();
    w.restart();
    w.wait_ready_on("sql", Duration::from_secs(10)).await;
    let (_, v) = w.get("/v1/streams/k").await;
    assert_eq!(
        (&v["next_sequence"], &v["last_committed"], &v["version"]),
        (&json!(6), &json!(2), &json!(2)),
        "{v}"
    );
    assert_eq!(
        v["waiting"][0]["commit_sequence"], 4,
        "the parked commit survived: {v}"
    );
    let body = json!({"commit_sequence": 3, "intent_id": "k3"});
    let (s, v) = w.post("/v1/streams/k/commits", body).await;
    assert_eq!((s, v["version"].as_i64()), (200, Some(3)), "{v}");
    let (_, v) = w.get("/v1/streams/k").await;
    assert_eq!(
        (&v["last_committed"], &v["version"]),
        (&json!(4), &json!(4)),
        "the parked commit applied: {v}"
    );
}

/// Two instances on one database race for the same streams: batches of both lose races and
/// are decided again (PostgreSQL), commits parked through one instance are applied by the
/// other's batches and answered by polling — and still no sequence is reused or skipped, and
/// every commit applies once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_racing_on_the_same_streams() {
    let pg = Postgres::database();
    let a = Arc::new(Warden::start(&fast_failover(&pg, None)));
    let b = Arc::new(Warden::start(&fast_failover(&pg, None)));
    for w in [&a, &b] {
        w.wait_ready_on("sql", Duration::from_secs(10)).await;
    }
    const PER_STREAM: usize = 30;
    let mut calls = Vec::new();
    for s in 0..4 {
        for i in 0..PER_STREAM {
            let w = if i % 2 == 0 { a.clone() } else { b.clone() };
            calls.push(tokio::spawn(async move {
                let body = json!({"intent_id": format!("i{i}"), "intent_type": "book"});
                let (st, v) = w.post(&format!("/v1/streams/race-{s}/intents"), body).await;
                assert_eq!(st, 201, "{v}");
                (s, i, v["commit_sequence"].as_i64().unwrap())
            }));
        }
    }
    let mut by_seq: HashMap<(usize, i64), usize> = HashMap::new();
    for c in calls {
        let (s, i, seq) = c.await.unwrap();
        assert!(
            by_seq.insert((s, seq), i).is_none(),
            "race-{s}: sequence {seq} reused"
        );
    }
    for s in 0..4 {
        let seqs: BTreeSet<i64> = by_seq.keys().filter(|k| k.0 == s).map(|k| k.1).collect();
        assert_eq!(
            seqs,
            (1..=PER_STREAM as i64).collect(),
            "race-{s}: none skipped"
        );
    }
    // Commits in reverse order, alternating instances: all but the first park.
    let mut commits = Vec::new();
    for ((s, seq), i) in &by_seq {
        let w = if seq % 2 == 0 { a.clone() } else { b.clone() };
        let (s, seq, i) = (*s, *seq, *i);
        commits.push(tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10 * (PER_STREAM as u64 - seq as u64))).await;
            let body =
                json!({"commit_sequence": seq, "intent_id": format!("i{i}"), "wait_ms": 30_000});
            let (st, v) = w.post(&format!("/v1/streams/race-{s}/commits"), body).await;
            assert_eq!(
                (st, v["state"].as_str()),
                (200, Some("committed_causal")),
                "{v}"
            );
            assert_eq!(v["version"].as_i64(), Some(seq), "{v}");
        }));
    }
    for c in commits {
        c.await.unwrap();
    }
    for s in 0..4 {
        let (_, v) = a.get(&format!("/v1/streams/race-{s}")).await;
        assert_eq!(
            (&v["last_committed"], &v["version"]),
            (&json!(30), &json!(30)),
            "{v}"
        );
    }
    let retries = "warden_stream_batch_retries_total";
    println!(
        "batches decided again: {} + {}",
        metric(&a.metrics().await, retries),
        metric(&b.metrics().await, retries)
    );
}
