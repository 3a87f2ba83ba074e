//! The PostgreSQL wire protocol (pgwire), for psql, psycopg, SQLAlchemy, Metabase, Grafana and
//! Superset.
//!
//! We answer queries with our own handlers rather than datafusion-postgres's service, because
//! every statement must pass the same gate as HTTP: the signed-in user's role, the read-only rule,
//! masking, the query log and the limits (a timeout over planning and every row, the row cap).
//! From datafusion-postgres we take what makes PostgreSQL clients feel at home: its SQL parser
//! that rewrites their catalog queries, the `pg_catalog` schema, the Arrow to PostgreSQL type
//! encoding (text and binary), and its SET/SHOW and transaction hooks.
//!
//! Each connection gets its own session for its user's role, set up once; tables are looked up
//! as queries name them, so a connection sees every new table version. Results are collected
//! (at most `limits.max_result_rows`) before they are sent, so the timeout and a client's cancel
//! request cover the whole execution.

use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion::sql::parser::Statement as DfStatement;
use datafusion::sql::sqlparser::ast::Statement;
use datafusion_postgres::QueryHook;
use datafusion_postgres::arrow_pg::datatypes::df::deserialize_parameters;
use datafusion_postgres::arrow_pg::datatypes::{arrow_schema_to_pg_fields, encode_recordbatch, into_pg_type};
use datafusion_postgres::datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_postgres::datafusion_pg_catalog::setup_pg_catalog;
use datafusion_postgres::datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_postgres::hooks::set_show::SetShowHook;
use datafusion_postgres::hooks::transactions::TransactionStatementHook;
use datafusion_postgres::pgwire;
use futures::{Sink, StreamExt};
use pgwire::api::auth::noop::NoopStartupHandler;
use pgwire::api::auth::sasl::SASLAuthStartupHandler;
use pgwire::api::auth::sasl::scram::ScramAuth;
use pgwire::api::auth::{DefaultServerParameterProvider, StartupHandler};
use pgwire::api::cancel::DefaultCancelHandler;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::{FieldInfo, QueryResponse, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, ConnectionManager, METADATA_USER, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::{PgWireBackendMessage, PgWireFrontendMessage};
use pgwire::types::format::FormatOptions;
use tokio::net::TcpListener;
use tributary_warehouse::access::{Caller, Role};
use tributary_warehouse::engine::{QueryError, Warehouse};

use super::auth::{ITERATIONS, ScramSource, Users};

/// A prepared statement: its SQL and, for statements we run, the parsed statement and its plan.
/// The same shape as datafusion-postgres's, so its hooks find what they expect in the portals.
type PgStatement = (String, Option<(Statement, LogicalPlan)>);

/// What the server version looks like to clients: SQLAlchemy and others parse it.
pub(super) const SERVER_VERSION: &str = "16.6";

/// Shared by every connection.
struct Inner {
    warehouse: Warehouse,
    users: Arc<Users>,
    parser: PostgresCompatibilityParser,
    parameters: Arc<DefaultServerParameterProvider>,
    connections: Arc<ConnectionManager>,
}

/// One connection's user and session.
struct Connection {
    caller: Caller,
    ctx: SessionContext,
}

/// What to do with a statement.
enum Kind {
    /// A query: planned and run through the warehouse's gate.
    Query,
    /// SET, SHOW of a session variable, BEGIN/COMMIT/ROLLBACK: answered by the session hooks.
    Session,
    /// Accepted and ignored, with this command tag (DISCARD, DEALLOCATE, SETs of engine options).
    Noop(&'static str),
}

fn classify(statement: &Statement) -> Kind {
    match statement {
        Statement::ShowVariable { .. } | Statement::ShowStatus { .. } | Statement::ShowCatalogs { .. } => Kind::Session,
        // Engine settings are the server's, not a client's: `SET datafusion.…` changes nothing.
        Statement::Set(_) if statement.to_string().to_ascii_lowercase().contains("datafusion.") => Kind::Noop("SET"),
        Statement::Set(_) => Kind::Session,
        // Savepoints guard writes, and nothing here writes: drivers (psycopg under SQLAlchemy)
        // still open them around their first statements.
        Statement::Savepoint { .. } => Kind::Noop("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Kind::Noop("RELEASE"),
        Statement::Rollback { savepoint: Some(_), .. } => Kind::Noop("ROLLBACK"),
        Statement::StartTransaction { .. } | Statement::Commit { .. } | Statement::Rollback { .. } => Kind::Session,
        Statement::Discard { .. } => Kind::Noop("DISCARD ALL"),
        Statement::Deallocate { .. } => Kind::Noop("DEALLOCATE"),
        // Everything else goes to the gate, which accepts queries and names what it refuses.
        _ => Kind::Query,
    }
}

/// Our errors as PostgreSQL errors, with the SQLSTATE a client expects.
fn pg_error(error: &QueryError) -> PgWireError {
    let code = match error {
        QueryError::Sql(_) => "42000",
        QueryError::ReadOnly(_) => "25006",
        QueryError::Forbidden { .. } => "42501",
        QueryError::Timeout { .. } | QueryError::Cancelled => "57014",
        QueryError::TooManyRows { .. } => "54000",
        QueryError::OutOfMemory { .. } => "53200",
        QueryError::Store(_) | QueryError::Execution(_) => "XX000",
    };
    PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), code.into(), error.to_string())))
}

fn api_error(error: impl std::error::Error + Send + Sync + 'static) -> PgWireError {
    PgWireError::ApiError(Box::new(error))
}

impl Inner {
    /// The connection's user and session, made on its first statement.
    fn connection<C: ClientInfo + ?Sized>(&self, client: &C) -> PgWireResult<Arc<Connection>> {
        if let Some(connection) = client.session_extensions().get::<Connection>() {
            return Ok(connection);
        }
        let name = client.metadata().get(METADATA_USER).cloned().unwrap_or_default();
        let caller = if self.users.is_empty() {
            // No users configured: only local connections are accepted, as the operator.
            Caller {
                user: if name.is_empty() { "anonymous".into() } else { name },
                role: Role::Admin,
            }
        } else {
            // SCRAM has checked the password of exactly this user.
            let role = self
                .users
                .role(&name)
                .ok_or_else(|| PgWireError::InvalidPassword(name.clone()))?;
            Caller { user: name, role }
        };
        let ctx = self.warehouse.session_for(caller.role);
        setup_pg_catalog(&ctx, "datafusion", EmptyContextProvider).map_err(|e| api_error(*e))?;
        super::pg_functions::register(&ctx, &caller.user);
        super::pg_functions::register_settings(&ctx).map_err(api_error)?;
        client.session_extensions().insert(Connection { caller, ctx });
        Ok(client
            .session_extensions()
            .get::<Connection>()
            .expect("inserted just now"))
    }

    fn parse(&self, sql: &str) -> PgWireResult<Vec<Statement>> {
        self.parser.parse(sql).map_err(|e| {
            PgWireError::UserError(Box::new(ErrorInfo::new("ERROR".into(), "42601".into(), e.to_string())))
        })
    }

    /// Plan a query statement through the warehouse's gate, logging a refusal.
    async fn plan(&self, connection: &Connection, mut statement: Statement, sql: &str) -> PgWireResult<LogicalPlan> {
        super::pg_rewrite::rewrite(&mut statement);
        let planned = self
            .warehouse
            .plan_statement(
                &connection.ctx,
                DfStatement::Statement(Box::new(statement)),
                &connection.caller,
            )
            .await;
        planned.map_err(|error| {
            self.warehouse.log_failure(sql, &connection.caller, "pg", &error);
            pg_error(&error)
        })
    }

    /// Run a plan under the limits and encode its rows in `format`; `by_text` when no parameters
    /// were bound, so that the answer may come from the result cache.
    async fn run(
        &self,
        connection: &Connection,
        plan: LogicalPlan,
        sql: &str,
        by_text: bool,
        format: &Format,
        options: Arc<FormatOptions>,
    ) -> PgWireResult<Response> {
        let mut rows = self
            .warehouse
            .execute(&connection.ctx, plan, sql, &connection.caller, "pg", by_text)
            .await
            .map_err(|e| pg_error(&e))?;
        let schema = rows.schema();
        let mut batches = Vec::new();
        while let Some(batch) = rows.next().await {
            batches.push(batch.map_err(|e| pg_error(&e))?);
        }
        let fields = Arc::new(arrow_schema_to_pg_fields(&schema, format, Some(options))?);
        let encoding = fields.clone();
        let data = batches
            .into_iter()
            .flat_map(move |batch| encode_recordbatch(encoding.clone(), batch));
        Ok(Response::Query(QueryResponse::new(fields, futures::stream::iter(data))))
    }
}

/// The session hooks, in the order they are asked.
fn session_hooks() -> [Arc<dyn QueryHook>; 2] {
    [Arc::new(TransactionStatementHook), Arc::new(SetShowHook)]
}

/// Parses and plans prepared statements (extended protocol).
struct Planner(Arc<Inner>);

#[async_trait]
impl QueryParser for Planner {
    type Statement = PgStatement;

    async fn parse_sql<C>(&self, client: &C, sql: &str, _types: &[Option<Type>]) -> PgWireResult<Option<PgStatement>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.0.parse(sql)?;
        if statements.is_empty() {
            return Ok(None);
        }
        let statement = statements.remove(0);
        let connection = self.0.connection(client)?;
        let plan = match classify(&statement) {
            Kind::Query => self.0.plan(&connection, statement.clone(), sql).await?,
            Kind::Session => {
                let mut planned = None;
                for hook in session_hooks() {
                    if let Some(plan) = hook
                        .handle_extended_parse_query(&statement, &connection.ctx, client)
                        .await
                    {
                        planned = Some(plan?);
                        break;
                    }
                }
                match planned {
                    Some(plan) => plan,
                    None => empty_plan()?,
                }
            }
            Kind::Noop(_) => empty_plan()?,
        };
        Ok(Some((sql.to_string(), Some((statement, plan)))))
    }

    fn get_parameter_types(&self, statement: &PgStatement) -> PgWireResult<Vec<Type>> {
        let Some((_, plan)) = &statement.1 else {
            return Ok(Vec::new());
        };
        parameter_types(plan)?
            .into_iter()
            .map(|t| t.map_or(Ok(Type::UNKNOWN), |t| into_pg_type(&t)))
            .collect()
    }

    fn get_result_schema(&self, statement: &PgStatement, format: Option<&Format>) -> PgWireResult<Vec<FieldInfo>> {
        match &statement.1 {
            Some((_, plan)) => {
                arrow_schema_to_pg_fields(plan.schema().as_arrow(), format.unwrap_or(&Format::UnifiedText), None)
            }
            None => Ok(Vec::new()),
        }
    }
}

fn empty_plan() -> PgWireResult<LogicalPlan> {
    datafusion::logical_expr::LogicalPlanBuilder::empty(false)
        .build()
        .map_err(api_error)
}

/// The types of `$1`, `$2`, ... by position, where the plan tells them. A parameter the plan does
/// not use (one a catalog rewrite dropped, say) keeps its place, with no type, so that the values
/// after it still line up with their own types.
fn parameter_types(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    let types = plan.get_parameter_types().map_err(api_error)?;
    let mut by_position: Vec<Option<DataType>> = Vec::new();
    for (id, t) in types {
        let Some(n) = id.trim_start_matches('$').parse::<usize>().ok().filter(|n| *n >= 1) else {
            continue;
        };
        if by_position.len() < n {
            by_position.resize(n, None);
        }
        by_position[n - 1] = t;
    }
    Ok(by_position)
}

/// The bound parameters, as the plan expects them. A value the client typed itself (psycopg
/// sends a Python float as float8, even where the column is numeric) is decoded as the client
/// sent it and then cast to the planned type, which arrow-pg's own coercion cannot do for every
/// pair (float8 to decimal).
fn parameter_values(portal: &Portal<PgStatement>, plan: &LogicalPlan) -> PgWireResult<ParamValues> {
    let planned = parameter_types(plan)?;
    let client_typed = |i: usize| portal.statement.parameter_types.get(i).is_some_and(Option::is_some);
    let hints: Vec<Option<&DataType>> = planned
        .iter()
        .enumerate()
        .map(|(i, t)| if client_typed(i) { None } else { t.as_ref() })
        .collect();
    let decoded = deserialize_parameters(portal, &hints)?;
    let ParamValues::List(values) = decoded else {
        return Ok(decoded);
    };
    let mut cast = Vec::with_capacity(values.len());
    for (i, value) in values.into_iter().enumerate() {
        let value = match planned.get(i).and_then(Option::as_ref) {
            Some(wanted) if value.value.data_type() != *wanted && !value.value.is_null() => {
                value.value.cast_to(wanted).map_err(|e| {
                    PgWireError::UserError(Box::new(ErrorInfo::new(
                        "ERROR".into(),
                        "22023".into(),
                        format!("parameter ${}: {e}", i + 1),
                    )))
                })?
            }
            Some(wanted) if value.value.is_null() => ScalarValue::try_from(wanted).map_err(api_error)?,
            _ => value.value,
        };
        cast.push(value);
    }
    Ok(ParamValues::from(cast))
}

/// Answers simple and extended queries.
struct Service {
    inner: Arc<Inner>,
    planner: Arc<Planner>,
}

#[async_trait]
impl SimpleQueryHandler for Service {
    async fn do_query<C>(&self, client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let statements = self.inner.parse(query)?;
        if statements.is_empty() {
            return Ok(vec![Response::EmptyQuery]);
        }
        let connection = self.inner.connection(client)?;
        let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
        let single = statements.len() == 1;
        let mut responses = Vec::new();
        for statement in statements {
            let sql = if single {
                query.to_string()
            } else {
                statement.to_string()
            };
            let response = match classify(&statement) {
                Kind::Query => {
                    let plan = self.inner.plan(&connection, statement, &sql).await?;
                    self.inner
                        .run(&connection, plan, &sql, true, &Format::UnifiedText, options.clone())
                        .await?
                }
                Kind::Session => {
                    let mut answered = None;
                    for hook in session_hooks() {
                        if let Some(response) = hook.handle_simple_query(&statement, &connection.ctx, client).await {
                            answered = Some(response?);
                            break;
                        }
                    }
                    answered.unwrap_or_else(|| Response::Execution(Tag::new("SET")))
                }
                Kind::Noop(tag) => Response::Execution(Tag::new(tag)),
            };
            responses.push(response);
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for Service {
    type Statement = PgStatement;
    type QueryParser = Planner;

    fn query_parser(&self) -> Arc<Planner> {
        self.planner.clone()
    }

    async fn do_query<C>(
        &self,
        client: &mut C,
        portal: &Portal<PgStatement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = PgStatement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let (sql, Some((statement, plan))) = &portal.statement.statement else {
            return Ok(Response::EmptyQuery);
        };
        let connection = self.inner.connection(client)?;
        match classify(statement) {
            Kind::Query => {
                let values = parameter_values(portal, plan)?;
                let by_text = match &values {
                    ParamValues::List(list) => list.is_empty(),
                    ParamValues::Map(map) => map.is_empty(),
                };
                let plan = plan.clone().replace_params_with_values(&values).map_err(api_error)?;
                let options = Arc::new(FormatOptions::from_client_metadata(client.metadata()));
                self.inner
                    .run(&connection, plan, sql, by_text, &portal.result_column_format, options)
                    .await
            }
            Kind::Session => {
                let none = ParamValues::from(Vec::<ScalarValue>::new());
                for hook in session_hooks() {
                    if let Some(response) = hook
                        .handle_extended_query(statement, plan, &none, &connection.ctx, client)
                        .await
                    {
                        return response;
                    }
                }
                Ok(Response::Execution(Tag::new("SET")))
            }
            Kind::Noop(tag) => Ok(Response::Execution(Tag::new(tag))),
        }
    }
}

/// Signs a connection in: SCRAM-SHA-256 against the configured users, or, with none configured,
/// anyone connecting from this machine.
enum SignIn {
    Scram(SASLAuthStartupHandler<DefaultServerParameterProvider>),
    Local(LocalOnly),
}

struct LocalOnly {
    connections: Arc<ConnectionManager>,
}

#[async_trait]
impl NoopStartupHandler for LocalOnly {
    fn connection_manager(&self) -> Option<Arc<ConnectionManager>> {
        Some(self.connections.clone())
    }

    async fn post_startup<C>(&self, client: &mut C, _message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        if client.socket_addr().ip().is_loopback() {
            Ok(())
        } else {
            Err(PgWireError::UserError(Box::new(ErrorInfo::new(
                "FATAL".into(),
                "28000".into(),
                "no users are configured, so only connections from this machine are served".into(),
            ))))
        }
    }
}

#[async_trait]
impl StartupHandler for SignIn {
    async fn on_startup<C>(&self, client: &mut C, message: PgWireFrontendMessage) -> PgWireResult<()>
    where
        C: ClientInfo + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        match self {
            SignIn::Scram(handler) => handler.on_startup(client, message).await,
            SignIn::Local(handler) => handler.on_startup(client, message).await,
        }
    }
}

/// The handlers pgwire asks for on each connection.
struct Handlers {
    inner: Arc<Inner>,
    service: Arc<Service>,
}

impl PgWireServerHandlers for Handlers {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        self.service.clone()
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        self.service.clone()
    }

    fn startup_handler(&self) -> Arc<impl StartupHandler> {
        // The SASL exchange keeps state, so each connection gets its own handler.
        if self.inner.users.is_empty() {
            return Arc::new(SignIn::Local(LocalOnly {
                connections: self.inner.connections.clone(),
            }));
        }
        let mut scram = ScramAuth::new(Arc::new(ScramSource(self.inner.users.clone())));
        scram.set_iterations(ITERATIONS);
        Arc::new(SignIn::Scram(
            SASLAuthStartupHandler::new(self.inner.parameters.clone())
                .with_scram(scram)
                .with_connection_manager(self.inner.connections.clone()),
        ))
    }

    fn cancel_handler(&self) -> Arc<impl pgwire::api::cancel::CancelHandler> {
        Arc::new(DefaultCancelHandler::new(self.inner.connections.clone()))
    }
}

/// TLS from a PEM certificate chain and key; connections may then ask for it.
pub fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<pgwire::tokio::TlsAcceptor, String> {
    use pgwire::tokio::tokio_rustls::rustls;
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect())
        .map_err(|e| format!("pg.tls_cert {}: {e}", cert.display()))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("pg.tls_key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("pg.tls_cert and pg.tls_key do not make a certificate: {e}"))?;
    config.alpn_protocols = vec![b"postgresql".to_vec()];
    Ok(pgwire::tokio::TlsAcceptor::from(Arc::new(config)))
}

/// Serve the PostgreSQL wire protocol on `listener` until the process ends.
pub async fn serve(
    listener: TcpListener,
    warehouse: Warehouse,
    users: Arc<Users>,
    tls: Option<pgwire::tokio::TlsAcceptor>,
) {
    let mut parameters = DefaultServerParameterProvider::default();
    parameters.server_version = SERVER_VERSION.to_string();
    parameters.is_superuser = false;
    parameters.default_transaction_read_only = true;
    parameters.scram_iterations = ITERATIONS;
    let inner = Arc::new(Inner {
        warehouse,
        users,
        parser: PostgresCompatibilityParser::new(),
        parameters: Arc::new(parameters),
        connections: Arc::new(ConnectionManager::new()),
    });
    let handlers = Arc::new(Handlers {
        service: Arc::new(Service {
            inner: inner.clone(),
            planner: Arc::new(Planner(inner.clone())),
        }),
        inner,
    });
    loop {
        let (socket, peer): (_, SocketAddr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                tracing::warn!("pg: accept failed: {e}");
                continue;
            }
        };
        let handlers = handlers.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            if let Err(e) = pgwire::tokio::process_socket(socket, tls, handlers).await {
                tracing::debug!(%peer, "pg connection ended: {e}");
            }
        });
    }
}
