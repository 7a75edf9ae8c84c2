//! `wait_ms` fairness: a request that arrives while others wait never overtakes them, even
//! when the key is freed through another instance (no local wake-up, so the head of the queue
//! is asleep between two polls).

use std::time::Duration;

use crate::support::Warden;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn late_arrival_does_not_overtake_the_queue() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/w.db", dir.path().display());
    let a = Warden::start(&[("WARDEN_DATABASE_URL", db.clone())]);
    let b = Warden::start(&[("WARDEN_DATABASE_URL", db)]);
    a.wait_ready_on("sql", Duration::from_secs(10)).await;
    b.wait_ready_on("sql", Duration::from_secs(10)).await;

    let mut overtaken = 0;
    for round in 0..10 {
        let key = format!("fair-{round}");
        let (_, held) = b.acquire(&key, "holder", 30_000, 0).await;
        let token = held["fencing_token"].as_i64().unwrap();
        let http = a.http.clone();
        let url = format!("{}/v1/locks/{key}/acquire", a.base());
        let head = tokio::spawn(async move {
            let body = json!({"owner": "head", "ttl_ms": 5000, "wait_ms": 5000});
            let r = http.post(url).json(&body).send().await.unwrap();
            r.json::<serde_json::Value>().await.unwrap()
        });
        tokio::time::sleep(Duration::from_millis(100)).await; // head is queued and polling
        let (s, _) = b.release(&key, "holder", token).await;
        assert_eq!(s, 200);
        let (s, late) = a.acquire(&key, "late", 5000, 50).await;
        let head = head.await.unwrap();
        if s == 200 && late["owner"] == "late" {
            overtaken += 1;
        }
        assert_eq!(
            head["owner"], "head",
            "round {round}: head of the queue got {head}"
        );
    }
    assert_eq!(overtaken, 0, "late arrivals overtook the queue");
}
