//! The HTTP push source through the library (the server wires `POST /api/v1/ingest/{pipeline}` to
//! this function): an NDJSON webhook body lands in raw and staging, a retried delivery adds
//! nothing, a CSV body works the same, and an unknown pipeline is a clear error.

use tributary_ingest::batch::BatchStatus;
use tributary_ingest::pipeline::parse_pipelines;
use tributary_ingest::run::{Pipelines, PushError, ingest_push};
use tributary_warehouse::layout::{DataDir, Layer};
use tributary_warehouse::store::Store;

use crate::texts;

const TICKETS: &str = r#"
[[pipelines]]
name = "crm_ticket_webhook"
source = "http"
[[pipelines.targets]]
entity = "support_ticket"
columns.ticket_id = "CaseNumber"
columns.customer_id = "AccountId"
columns.opened_at = "CreatedDate"
columns.priority = { from = "Priority", allowed = ["Low", "Medium", "High"] }
columns.satisfaction = { from = "CSAT", min = 1, max = 5 }
"#;

async fn count(store: &Store, sql: &str) -> String {
    let tables = [(Layer::Staging, "support_ticket"), (Layer::System, "quarantine")];
    texts(store, &tables, sql).await.swap_remove(0)
}

#[tokio::test]
async fn webhook_bodies_are_ingested_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(DataDir::new(dir.path()));
    let pipelines = Pipelines::new(parse_pipelines(TICKETS, "test").unwrap()).unwrap();
    let body = concat!(
        r#"{"CaseNumber":"T1","AccountId":"001A","CreatedDate":"2026-01-05T10:00:00Z","Priority":"High","CSAT":4}"#,
        "\n",
        r#"{"CaseNumber":"T2","AccountId":"001B","CreatedDate":"2026-01-05T11:00:00Z","Priority":"Urgent"}"#,
        "\n"
    );
    let report = ingest_push(
        &store,
        &pipelines,
        "crm_ticket_webhook",
        body.into(),
        Some("application/x-ndjson"),
    )
    .await
    .unwrap();
    assert_eq!(report.status, BatchStatus::Committed);
    assert_eq!(
        (report.rows_read, report.rows_stored, report.rows_quarantined),
        (2, 1, 1)
    );
    assert!(report.file.starts_with("push:"), "{}", report.file);
    assert_eq!(count(&store, "SELECT count(*) FROM staging.support_ticket").await, "1");
    assert_eq!(
        count(&store, "SELECT reason FROM system.quarantine").await,
        "priority: `Urgent` is not one of Low, Medium, High"
    );

    // The sender retries the same delivery: nothing is added.
    let again = ingest_push(
        &store,
        &pipelines,
        "crm_ticket_webhook",
        body.into(),
        Some("application/x-ndjson"),
    )
    .await
    .unwrap();
    assert_eq!(again.status, BatchStatus::AlreadyIngested);
    assert_eq!(count(&store, "SELECT count(*) FROM staging.support_ticket").await, "1");

    // CSV works the same, chosen by the content type.
    let csv = "CaseNumber,AccountId,CreatedDate,Priority,CSAT\nT3,001C,2026-01-06T09:30:00Z,Low,5\n";
    let report = ingest_push(
        &store,
        &pipelines,
        "crm_ticket_webhook",
        csv.into(),
        Some("text/csv; charset=utf-8"),
    )
    .await
    .unwrap();
    assert_eq!(report.rows_stored, 1);
    assert_eq!(count(&store, "SELECT count(*) FROM staging.support_ticket").await, "2");

    let unknown = ingest_push(&store, &pipelines, "nope", csv.into(), None)
        .await
        .unwrap_err();
    assert!(matches!(unknown, PushError::UnknownPipeline(_)));
    assert_eq!(unknown.to_string(), "no pipeline is called `nope`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_retried_while_the_first_is_running_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::new(DataDir::new(dir.path()));
    let pipelines = Pipelines::new(parse_pipelines(TICKETS, "test").unwrap()).unwrap();
    let body: String = (0..2_000)
        .map(|i| {
            format!(
                "{{\"CaseNumber\":\"T{i}\",\"AccountId\":\"001A\",\"CreatedDate\":\"2026-01-05T10:00:00Z\",\"Priority\":\"Low\"}}\n"
            )
        })
        .collect();
    // The sender gives up waiting and sends the same body again while the first is still being
    // stored: both find the batch not yet in the ingest log.
    let deliver = || {
        ingest_push(
            &store,
            &pipelines,
            "crm_ticket_webhook",
            body.clone().into(),
            Some("application/x-ndjson"),
        )
    };
    let (first, second) = tokio::join!(deliver(), deliver());
    let mut statuses = [first.unwrap().status, second.unwrap().status];
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(statuses, [BatchStatus::AlreadyIngested, BatchStatus::Committed]);
    assert_eq!(
        count(&store, "SELECT count(*) FROM staging.support_ticket").await,
        "2000"
    );
    let raw = [(Layer::Raw, "crm_ticket_webhook")];
    assert_eq!(
        texts(&store, &raw, "SELECT count(*) FROM raw.crm_ticket_webhook").await,
        ["2000"]
    );
}
