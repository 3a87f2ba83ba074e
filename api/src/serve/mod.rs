//! `tributary serve`: the HTTP API and the PostgreSQL endpoint in one process, over one warehouse,
//! with the job scheduler beside them.

pub mod auth;
pub mod error;
pub mod http;
pub mod pg;
mod pg_functions;
mod pg_rewrite;
pub mod results;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use tributary_warehouse::layout::DataDir;
use tributary_warehouse::query_log::QueryLog;

use crate::cli::ServeArgs;
use crate::config::Config;
use crate::jobs::JobRunner;

/// The OpenAPI document of the HTTP API.
pub const OPENAPI: &str = include_str!("../../openapi.json");

/// Serve until interrupted (Ctrl-C or SIGTERM), then flush the query log.
pub async fn serve(config: Config, args: ServeArgs) -> anyhow::Result<()> {
    let http_addr = args.http.unwrap_or(config.http.addr);
    let pg_addr = args.pg.unwrap_or(config.pg.addr);
    let users = Arc::new(auth::Users::new(&config.users).map_err(anyhow::Error::msg)?);
    if users.is_empty() {
        for (what, addr) in [("HTTP", http_addr), ("PostgreSQL", pg_addr)] {
            anyhow::ensure!(
                addr.ip().is_loopback(),
                "no users are configured, so the {what} server will not listen on {addr}, beyond this machine: \
                 add [[users]] to the configuration (see `tributary hash-password`) or listen on 127.0.0.1"
            );
        }
        tracing::warn!(
            "NO USERS ARE CONFIGURED: anyone on this machine can read every table, unauthenticated. \
             Add [[users]] to the configuration before sharing this server."
        );
    }
    let tls = match (&config.pg.tls_cert, &config.pg.tls_key) {
        (Some(cert), Some(key)) => Some(pg::tls_acceptor(cert, key).map_err(anyhow::Error::msg)?),
        _ => None,
    };
    let data_dir = DataDir::new(&config.data_dir);
    let warehouse = config.warehouse()?;
    let query_log = QueryLog::start(warehouse.store().clone());
    let warehouse = warehouse.with_query_log(query_log.clone());
    let config = Arc::new(config);
    let jobs = JobRunner::new(config.clone(), warehouse.clone());
    let pipelines = Arc::new(config.pipelines()?);

    let http_listener = tokio::net::TcpListener::bind(http_addr)
        .await
        .with_context(|| format!("cannot listen for HTTP on {http_addr}"))?;
    let pg_listener = tokio::net::TcpListener::bind(pg_addr)
        .await
        .with_context(|| format!("cannot listen for PostgreSQL clients on {pg_addr}"))?;
    let http_local = http_listener.local_addr()?;
    let pg_local = pg_listener.local_addr()?;

    let ready = Arc::new(AtomicBool::new(false));
    let state = http::AppState {
        warehouse: warehouse.clone(),
        users: users.clone(),
        jobs: jobs.clone(),
        pipelines,
        ready: ready.clone(),
        stats: Arc::default(),
    };
    let app = http::router(state).into_make_service_with_connect_info::<SocketAddr>();
    let http_server = axum::serve(http_listener, app).with_graceful_shutdown(shutdown_signal());
    let pg_server = pg::serve(pg_listener, warehouse.clone(), users.clone(), tls.clone());

    // Ready once the catalog answers: every table listed and the marts' schema readable.
    let catalog = warehouse.clone();
    let readiness = ready.clone();
    tokio::spawn(async move {
        match catalog.sql("SELECT count(*) FROM information_schema.tables").await {
            Ok(_) => readiness.store(true, Ordering::Relaxed),
            Err(e) => tracing::error!("the catalog cannot be loaded: {e}"),
        }
    });
    jobs.start_schedules().await.map_err(anyhow::Error::msg)?;

    println!("Serving {}", std::path::absolute(data_dir.root())?.display());
    println!("  HTTP API and dashboards: http://{http_local}/  (OpenAPI at /openapi.json)");
    println!(
        "  PostgreSQL endpoint:     postgresql://{pg_local}/tributary{}",
        if tls.is_some() { "  (TLS on request)" } else { "" }
    );
    if users.is_empty() {
        println!("  no users configured: local connections only, unauthenticated");
    }
    // One line for scripts and tests to find the ports (useful with port 0).
    println!("listening http={http_local} pg={pg_local}");
    use std::io::Write;
    std::io::stdout().flush().ok();

    tokio::select! {
        result = http_server => result.context("the HTTP server failed")?,
        () = pg_server => {}
    }
    query_log.flush().await;
    println!("stopped; the query log is written");
    Ok(())
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("a SIGTERM handler can be installed");
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down");
}
