//! The HTTP API (axum): the SQL endpoint, the catalog, the 7P profile, churn risks, forecasts, the
//! semantic layer, ingest pushes and jobs. Each handler is a few lines over the same warehouse,
//! ingest and models functions the CLI calls.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, DefaultBodyLimit, FromRequestParts, MatchedPath, Path, Query, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tributary_ingest::run::Pipelines;
use tributary_warehouse::access::{Caller, Role};
use tributary_warehouse::engine::{Warehouse, json_rows};
use tributary_warehouse::layout::Layer;
use tributary_warehouse::semantic::MetricQuery;

use super::auth::Users;
use super::error::ApiError;
use super::results::{Format, respond};
use crate::jobs::{JobError, JobRunner};

/// What every handler shares.
#[derive(Clone)]
pub struct AppState {
    /// The tables, with the query log attached.
    pub warehouse: Warehouse,
    /// Who may sign in.
    pub users: Arc<Users>,
    /// Jobs, scheduled and by hand.
    pub jobs: JobRunner,
    /// Pipelines that pushes go through.
    pub pipelines: Arc<Pipelines>,
    /// Set once the catalog has been loaded.
    pub ready: Arc<AtomicBool>,
    /// Request counts and times for `/metrics`.
    pub stats: Arc<Stats>,
}

/// The API's routes.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(prometheus))
        .route("/openapi.json", get(openapi))
        .route("/api/v1/me", get(me))
        .route("/api/v1/sql", post(sql))
        .route("/api/v1/tables", get(tables))
        .route("/api/v1/tables/{table}", get(table))
        .route("/api/v1/customers", get(customers))
        .route("/api/v1/customers/{key}/profile", get(profile))
        .route("/api/v1/churn", get(churn))
        .route("/api/v1/forecasts/{kind}", get(forecasts))
        .route("/api/v1/metrics", post(metrics))
        .route("/api/v1/ingest/{pipeline}", post(ingest))
        .route("/api/v1/jobs", get(jobs))
        .route("/api/v1/jobs/{name}/run", post(run_job))
        .merge(super::web::routes())
        .fallback(|| async { ApiError::not_found("no such endpoint; GET /openapi.json lists them") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not take that method",
            )
        })
        // Pushed batches can be large; everything else is small.
        .layer(DefaultBodyLimit::max(256 << 20))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count))
        .with_state(state)
}

/// The signed-in caller of a request: HTTP Basic credentials checked against the configured
/// users; with no users configured, anyone on this machine (the server listens on loopback only)
/// as admin.
pub struct Signed(pub Caller);

impl FromRequestParts<AppState> for Signed {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let unauthorized = |message: &str| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", message);
        if state.users.is_empty() {
            let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0);
            return match peer {
                Some(peer) if peer.ip().is_loopback() => Ok(Signed(Caller {
                    user: "anonymous".into(),
                    role: Role::Admin,
                })),
                _ => Err(unauthorized(
                    "no users are configured, so only connections from this machine are served",
                )),
            };
        }
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Err(unauthorized(
                "sign in: send HTTP Basic credentials of a configured user",
            ));
        };
        let (user, password) = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Basic ").or_else(|| v.strip_prefix("basic ")))
            .and_then(super::auth::decode_basic)
            .ok_or_else(|| unauthorized("the Authorization header is not HTTP Basic credentials"))?;
        match state.users.verify(&user, &password) {
            Some(caller) => Ok(Signed(caller)),
            None => Err(unauthorized("wrong user name or password")),
        }
    }
}

fn require_admin(caller: &Caller, what: &str) -> Result<(), ApiError> {
    if caller.role == Role::Admin {
        Ok(())
    } else {
        Err(ApiError::forbidden(format!(
            "{what} needs the admin role; {} has the {} role",
            caller.user, caller.role
        )))
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    if state.ready.load(Ordering::Relaxed) {
        Json(json!({"ready": true})).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"ready": false}))).into_response()
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], super::OPENAPI).into_response()
}

async fn me(Signed(caller): Signed) -> Json<Value> {
    Json(json!({
        "user": caller.user,
        "role": caller.role,
        "schemas": caller.role.layers().iter().map(|l| l.name()).collect::<Vec<_>>(),
    }))
}

/// The query from a body: JSON `{"sql": "..."}`, or the SQL as plain text.
fn sql_from_body(headers: &HeaderMap, body: &Bytes) -> Result<String, ApiError> {
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|c| c.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    let text = std::str::from_utf8(body).map_err(|_| ApiError::bad_request("the body is not UTF-8 text"))?;
    let sql = if json {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Body {
            sql: String,
        }
        serde_json::from_str::<Body>(text)
            .map_err(|e| ApiError::bad_request(format!("the body must be {{\"sql\": \"SELECT ...\"}}: {e}")))?
            .sql
    } else {
        text.to_string()
    };
    if sql.trim().is_empty() {
        return Err(ApiError::bad_request("no SQL given"));
    }
    Ok(sql)
}

async fn sql(
    State(state): State<AppState>,
    Signed(caller): Signed,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let format = Format::from_accept(headers.get(header::ACCEPT).and_then(|a| a.to_str().ok()))?;
    let sql = sql_from_body(&headers, &body)?;
    let rows = state.warehouse.query(&sql, &caller, "http").await?;
    respond(rows, format).await
}

/// Run a query the API composed, as `caller`, and return its rows as JSON objects (from the
/// result cache while the tables it reads are unchanged).
async fn rows_for(state: &AppState, caller: &Caller, sql: &str) -> Result<Vec<Value>, ApiError> {
    let result = state.warehouse.sql_as(sql, caller, "http").await?;
    let rows = json_rows(&result.batches)?;
    Ok(rows.into_iter().map(Value::Object).collect())
}

async fn tables(State(state): State<AppState>, Signed(caller): Signed) -> Json<Value> {
    let store = state.warehouse.store();
    let tables: Vec<Value> = store
        .tables()
        .into_iter()
        .filter(|(layer, _)| caller.role.reads(*layer))
        .map(|(layer, name)| {
            json!({
                "table": format!("{layer}.{name}"),
                "schema": layer.name(),
                "name": name,
                "version": store.latest_version(layer, &name),
                "updated_at": store
                    .updated_at(layer, &name)
                    .map(|t| chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339()),
            })
        })
        .collect();
    Json(json!({ "tables": tables }))
}

/// `layer.name`, checked to be a table the caller may read.
fn known_table(state: &AppState, caller: &Caller, table: &str) -> Result<(Layer, String), ApiError> {
    let plain = |s: &str| !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let (layer, name) = table
        .split_once('.')
        .filter(|(l, n)| plain(l) && plain(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{table:?} is not a table name: give schema.table, e.g. marts.customer_7p"
            ))
        })?;
    let layer = Layer::ALL
        .into_iter()
        .find(|l| l.name() == layer)
        .ok_or_else(|| ApiError::not_found(format!("no schema {layer:?} (raw, staging, core, marts, ml, system)")))?;
    if !caller.role.reads(layer) {
        return Err(ApiError::forbidden(format!(
            "the {} role may not read schema {layer}",
            caller.role
        )));
    }
    if !state.warehouse.store().exists(layer, name) {
        return Err(ApiError::not_found(format!("no table {layer}.{name}")));
    }
    Ok((layer, name.to_string()))
}

async fn table(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Path(table): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let (layer, name) = known_table(&state, &caller, &table)?;
    let result = state
        .warehouse
        .sql_as(&format!("SELECT * FROM {layer}.{name} LIMIT 0"), &caller, "http")
        .await?;
    let columns: Vec<Value> = result
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string(), "nullable": f.is_nullable()}))
        .collect();
    Ok(Json(json!({
        "table": format!("{layer}.{name}"),
        "version": state.warehouse.store().latest_version(layer, &name),
        "columns": columns,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SearchParams {
    search: String,
    limit: Option<u32>,
}

async fn customers(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Query(params): Query<SearchParams>,
) -> Result<Json<Value>, ApiError> {
    if params.search.trim().is_empty() {
        return Err(ApiError::bad_request("give some text to search for: ?search=..."));
    }
    let limit = params.limit.unwrap_or(20).clamp(1, 1_000);
    let found = tributary_warehouse::profile::search(&state.warehouse, &caller, &params.search, limit).await?;
    Ok(Json(json!({ "customers": found })))
}

async fn profile(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Path(key): Path<String>,
) -> Result<Json<Value>, ApiError> {
    use tributary_warehouse::profile::ProfileError;
    // The profile reads core and marts: analysts and admins. Viewers see the 7P marts directly.
    if !caller.role.reads(Layer::Core) {
        return Err(ApiError::forbidden(format!(
            "a customer profile needs the analyst or admin role; {} has the {} role",
            caller.user, caller.role
        )));
    }
    match tributary_warehouse::profile::profile(&state.warehouse, &key).await {
        Ok(profile) => Ok(Json(Value::Object(profile))),
        Err(ProfileError::NotFound(_)) => Err(ApiError::not_found(format!("no customer {key:?}"))),
        Err(e @ ProfileError::Ambiguous { .. }) => Err(ApiError::new(StatusCode::CONFLICT, "ambiguous", e.to_string())),
        Err(ProfileError::Query(e)) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChurnParams {
    limit: Option<u32>,
    region: Option<String>,
    segment: Option<String>,
}

async fn churn(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Query(params): Query<ChurnParams>,
) -> Result<Json<Value>, ApiError> {
    if !state.warehouse.store().exists(Layer::Ml, "churn_score") {
        return Err(ApiError::not_found(
            "no churn scores yet: run the churn job (tributary jobs run churn)",
        ));
    }
    let limit = params.limit.unwrap_or(50).clamp(1, 10_000);
    let filter = where_equal(&[("p.region", &params.region), ("p.segment", &params.segment)]);
    // Names, segments and regions from the 7P mart, which every role may read.
    let rows = rows_for(
        &state,
        &caller,
        &format!(
            "SELECT s.*, p.name, p.segment, p.region FROM ml.churn_score s \
             LEFT JOIN marts.customer_7p p ON p.customer_key = s.customer_key{filter} \
             ORDER BY s.churn_score DESC, s.customer_key LIMIT {limit}"
        ),
    )
    .await?;
    Ok(Json(json!({ "customers": rows })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ForecastParams {
    region: Option<String>,
    channel: Option<String>,
    category: Option<String>,
    level: Option<String>,
    sku: Option<String>,
    limit: Option<u32>,
}

fn quote(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// ` WHERE column = 'value' AND ...` for the parameters given, or nothing when none is.
fn where_equal(filters: &[(&str, &Option<String>)]) -> String {
    let conditions: Vec<String> = filters
        .iter()
        .filter_map(|(column, value)| value.as_ref().map(|v| format!("{column} = {}", quote(v))))
        .collect();
    if conditions.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", conditions.join(" AND "))
    }
}

async fn forecasts(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Path(kind): Path<String>,
    Query(params): Query<ForecastParams>,
) -> Result<Json<Value>, ApiError> {
    let (table, order, filters): (&str, &str, Vec<(&str, &Option<String>)>) = match kind.as_str() {
        "sales" => (
            "sales_forecast",
            "level, region, channel, category, month_start",
            vec![
                ("level", &params.level),
                ("region", &params.region),
                ("channel", &params.channel),
                ("category", &params.category),
            ],
        ),
        "demand" => (
            "demand_forecast",
            "sku, region, week_start",
            vec![
                ("sku", &params.sku),
                ("region", &params.region),
                ("category", &params.category),
            ],
        ),
        other => return Err(ApiError::not_found(format!("no forecast {other:?}: sales or demand"))),
    };
    if !state.warehouse.store().exists(Layer::Ml, table) {
        return Err(ApiError::not_found(format!(
            "no {kind} forecast yet: run the {table} job (tributary jobs run {table})"
        )));
    }
    let filter = where_equal(&filters);
    let limit = params.limit.unwrap_or(10_000).clamp(1, 100_000);
    let rows = rows_for(
        &state,
        &caller,
        &format!("SELECT * FROM ml.{table}{filter} ORDER BY {order} NULLS FIRST LIMIT {limit}"),
    )
    .await?;
    Ok(Json(json!({ "forecast": rows })))
}

async fn metrics(State(state): State<AppState>, Signed(caller): Signed, body: Bytes) -> Result<Json<Value>, ApiError> {
    use tributary_warehouse::semantic::MetricError;
    let query: MetricQuery = serde_json::from_slice(&body)
        .map_err(|e| ApiError::bad_request(format!("the body is not a metric query: {e}")))?;
    let answer = tributary_warehouse::semantic::query_metrics_for(&state.warehouse, &query, &caller.user, "http")
        .await
        .map_err(|e| match e {
            MetricError::Query(e) => ApiError::from(e),
            other => ApiError::bad_request(other.to_string()),
        })?;
    Ok(Json(json!({
        "rows": json_rows(&answer.result.batches)?,
        "sql": answer.sql,
        "sources": answer.sources,
    })))
}

async fn ingest(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Path(pipeline): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    use tributary_ingest::run::PushError;
    require_admin(&caller, "ingest")?;
    let content_type = headers.get(header::CONTENT_TYPE).and_then(|c| c.to_str().ok());
    let report =
        tributary_ingest::run::ingest_push(state.warehouse.store(), &state.pipelines, &pipeline, body, content_type)
            .await
            .map_err(|e| match e {
                PushError::UnknownPipeline(_) => ApiError::not_found(e.to_string()),
                other => ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "ingest_failed", other.to_string()),
            })?;
    Ok(Json(
        serde_json::to_value(report).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}

async fn jobs(State(state): State<AppState>, Signed(caller): Signed) -> Result<Json<Value>, ApiError> {
    require_admin(&caller, "jobs")?;
    Ok(Json(json!({ "jobs": state.jobs.list().await })))
}

async fn run_job(
    State(state): State<AppState>,
    Signed(caller): Signed,
    Path(name): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&caller, "running a job")?;
    match state.jobs.run(&name, true).await {
        Ok(outcome) => Ok(Json(
            serde_json::to_value(outcome).map_err(|e| ApiError::internal(e.to_string()))?,
        )),
        Err(e @ JobError::Unknown(_)) => Err(ApiError::not_found(e.to_string())),
        Err(e @ JobError::AlreadyRunning(_)) => Err(ApiError::new(StatusCode::CONFLICT, "job_running", e.to_string())),
        Err(e @ JobError::Failed { .. }) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "job_failed",
            e.to_string(),
        )),
    }
}

/// Requests by route and status, and their total time, for Prometheus.
#[derive(Debug, Default)]
pub struct Stats {
    requests: Mutex<BTreeMap<(String, u16), (u64, f64)>>,
}

async fn count(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |p| p.as_str().to_string());
    let started = Instant::now();
    let response = next.run(request).await;
    let seconds = started.elapsed().as_secs_f64();
    let mut requests = state.stats.requests.lock().expect("never poisoned");
    let entry = requests.entry((route, response.status().as_u16())).or_default();
    entry.0 += 1;
    entry.1 += seconds;
    response
}

async fn prometheus(State(state): State<AppState>) -> Response {
    let mut text = String::from(
        "# HELP tributary_http_requests_total HTTP requests by route and status.\n\
         # TYPE tributary_http_requests_total counter\n",
    );
    let requests = state.stats.requests.lock().expect("never poisoned").clone();
    for ((route, status), (count, _)) in &requests {
        text.push_str(&format!(
            "tributary_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}\n"
        ));
    }
    text.push_str(
        "# HELP tributary_http_request_seconds_total Time spent answering HTTP requests.\n\
         # TYPE tributary_http_request_seconds_total counter\n",
    );
    for ((route, status), (_, seconds)) in &requests {
        text.push_str(&format!(
            "tributary_http_request_seconds_total{{route=\"{route}\",status=\"{status}\"}} {seconds}\n"
        ));
    }
    text.push_str("# HELP tributary_ready Whether the catalog is loaded.\n# TYPE tributary_ready gauge\n");
    text.push_str(&format!(
        "tributary_ready {}\n",
        u8::from(state.ready.load(Ordering::Relaxed))
    ));
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
