//! The console: a small server-rendered web UI for operators (live, under `handoff serve`)
//! and auditors (offline, `handoff console LOG`). The same pages serve both:
//!
//! | path | page |
//! |---|---|
//! | `/` | the board: open holds (soonest ending first), open first-refusal offers, the latest decisions by type and rule, dead letters by reason, ICE occupancy, the instance's role |
//! | `/person/{id}` | one person's `explain` timeline, with who was told of each decision |
//! | `/reports/ddor?from=&to=` | the Declined Detainer Outcome Report for a window |
//! | `/reports/capacity?from=&to=` | ICE detention for a window |
//! | `/login`, `/logout` | the credential form; sign out |
//!
//! Layout: `board` is the board's data (sans IO), `source` where pages get their data,
//! `pages` the HTML, `auth` the credential and sessions; this file routes.
//!
//! Personal data is behind [`auth::Gate`]: every page but `/login` answers 401 with the
//! login form, and nothing else, to a request without a session or the credential. Every
//! answer forbids scripts, framing and caching (`Content-Security-Policy`,
//! `Cache-Control: no-store`), since nothing here needs them.

pub mod auth;
mod board;
pub(crate) mod pages;
pub(crate) mod source;

use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::Router;
use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use handoff_core::engine::Engine;
use handoff_core::model::Time;
use serde::Deserialize;

pub use board::{Board, Recent, Role};
use source::Source;

use crate::answers::report::Format;

/// The live service's latest board, refreshed by whoever holds the engine (the writer, or
/// a standby tailing the stream) at most once every [`BoardCell::EVERY`].
#[derive(Default)]
pub struct BoardCell {
    /// Off unless the console is: then nobody pays for building boards.
    on: std::sync::atomic::AtomicBool,
    inner: Mutex<Option<(Arc<Board>, Instant)>>,
}

impl BoardCell {
    /// How stale a board may get while anything changes.
    pub(crate) const EVERY: std::time::Duration = std::time::Duration::from_secs(1);

    pub(crate) fn turn_on(&self) {
        self.on.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    pub(crate) fn is_on(&self) -> bool {
        self.on.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Builds a new board when the console is on and the last is older than
    /// [`BoardCell::EVERY`] (or `force`).
    pub(crate) fn refresh(&self, engine: &Engine, recent: &Recent, role: Role, force: bool) {
        if !self.is_on() {
            return;
        }
        let now = Instant::now();
        let stale = self
            .inner
            .lock()
            .expect("board lock")
            .as_ref()
            .is_none_or(|(_, at)| now.duration_since(*at) >= Self::EVERY);
        if stale || force {
            let board = Arc::new(Board::build(engine, recent, chrono::Utc::now(), role));
            *self.inner.lock().expect("board lock") = Some((board, now));
        }
    }

    /// The latest board, with "time left" counted from now.
    pub(crate) fn get(&self) -> Arc<Board> {
        let now = chrono::Utc::now();
        match &*self.inner.lock().expect("board lock") {
            Some((board, _)) => {
                let mut b = (**board).clone();
                b.as_of = now;
                Arc::new(b)
            }
            None => Arc::new(Board::empty(now, Role::Single)),
        }
    }
}

impl std::fmt::Debug for BoardCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BoardCell")
            .field("on", &self.is_on())
            .finish_non_exhaustive()
    }
}

/// The console's state: who may see it, and where its data comes from.
pub(crate) struct Console {
    gate: auth::Gate,
    source: Source,
}

impl Console {
    pub(crate) fn new(gate: auth::Gate, source: Source) -> Arc<Console> {
        Arc::new(Console { gate, source })
    }
}

/// The console's routes.
pub(crate) fn routes(console: Arc<Console>) -> Router {
    Router::new()
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/", get(board_page))
        .route("/person", get(find_person))
        .route("/person/{id}", get(person_page))
        .route("/reports/ddor", get(ddor_page))
        .route("/reports/capacity", get(capacity_page))
        .with_state(console)
}

/// An HTML answer with the headers every console page carries.
fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    r
}

fn unauthorized(error: Option<&str>) -> Response {
    let mut r = html(StatusCode::UNAUTHORIZED, pages::login(error));
    // A browser shows the form; a script learns how to authenticate.
    r.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer realm=\"handoff console\""),
    );
    r
}

/// Proof that the request came with a session or the credential.
struct Authed {
    session: Option<String>,
}

impl FromRequestParts<Arc<Console>> for Authed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut Parts,
        console: &Arc<Console>,
    ) -> Result<Self, Self::Rejection> {
        let now = Instant::now();
        for value in parts.headers.get_all(header::COOKIE) {
            if let Some(token) = value
                .to_str()
                .ok()
                .and_then(|v| auth::cookie(v, auth::COOKIE))
                && console.gate.session(token, now)
            {
                return Ok(Authed {
                    session: Some(token.to_owned()),
                });
            }
        }
        let bearer = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::to_owned);
        if let Some(credential) = bearer
            && verify(console, credential).await
        {
            return Ok(Authed { session: None });
        }
        Err(unauthorized(None))
    }
}

/// Argon2 is slow on purpose: it runs on the blocking pool.
async fn verify(console: &Arc<Console>, credential: String) -> bool {
    let console = console.clone();
    tokio::task::spawn_blocking(move || console.gate.verify(&credential))
        .await
        .unwrap_or(false)
}

async fn login_form() -> Response {
    html(StatusCode::OK, pages::login(None))
}

#[derive(Deserialize)]
struct LoginForm {
    credential: String,
}

async fn login(
    State(console): State<Arc<Console>>,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    if !verify(&console, form.credential).await {
        return unauthorized(Some("That is not the configured credential."));
    }
    let token = console.gate.open_session(Instant::now());
    let cookie = format!(
        "{}={token}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
        auth::COOKIE,
        auth::SESSION_TTL.as_secs()
    );
    let mut r = Redirect::to("/").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).expect("hex token"),
    );
    r
}

async fn logout(State(console): State<Arc<Console>>, who: Authed) -> Response {
    if let Some(token) = who.session {
        console.gate.close_session(&token);
    }
    let mut r = Redirect::to("/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&format!(
            "{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0",
            auth::COOKIE
        ))
        .expect("ascii"),
    );
    r
}

async fn board_page(State(console): State<Arc<Console>>, _: Authed) -> Response {
    html(StatusCode::OK, pages::board(&console.source.board()))
}

#[derive(Deserialize)]
struct Find {
    id: String,
}

async fn find_person(_: Authed, Query(find): Query<Find>) -> Response {
    let id = find.id.trim().to_ascii_uppercase();
    if !is_person_id(&id) {
        return html(
            StatusCode::BAD_REQUEST,
            pages::message(
                "Not a person id",
                "A person id is 4 to 32 capital letters, digits and hyphens, starting with a letter or digit (ICD section 1).",
            ),
        );
    }
    Redirect::to(&format!("/person/{id}")).into_response()
}

/// ICD section 1: `^[A-Z0-9][A-Z0-9-]{3,31}$`. Checked before replaying anything.
fn is_person_id(id: &str) -> bool {
    let b = id.as_bytes();
    (4..=32).contains(&b.len())
        && b[0] != b'-'
        && b.iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == b'-')
}

async fn person_page(
    State(console): State<Arc<Console>>,
    _: Authed,
    Path(id): Path<String>,
) -> Response {
    if !is_person_id(&id) {
        return html(
            StatusCode::NOT_FOUND,
            pages::message("No such person", "That is not a person id."),
        );
    }
    match console.source.person(id.clone()).await {
        Ok(Some(timeline)) => html(StatusCode::OK, pages::person(&timeline)),
        Ok(None) => html(
            StatusCode::NOT_FOUND,
            pages::message(
                "No such person",
                &format!("{id} does not appear in the log."),
            ),
        ),
        Err(e) => failed(e),
    }
}

fn failed(e: source::SourceError) -> Response {
    tracing::warn!(error = %e, "console: a page could not be made");
    html(
        StatusCode::INTERNAL_SERVER_ERROR,
        pages::message("The page could not be made", &e.to_string()),
    )
}

#[derive(Deserialize)]
struct Window {
    from: Option<String>,
    to: Option<String>,
}

impl Window {
    /// The window asked for, else the default; what is wrong with it, as a page's title
    /// and text.
    fn resolve(&self, console: &Console) -> Result<(Time, Time), (&'static str, String)> {
        let (default_from, default_to) = console.source.default_window();
        let parse = |v: &Option<String>, default: Time, name: &str| match v.as_deref() {
            None | Some("") => Ok(default),
            Some(s) => crate::edge::envelope::parse_time(s.trim()).map_err(|e| {
                (
                    "Not a time",
                    format!("{name}: {e} (RFC 3339 with an offset, e.g. 2017-01-28T00:00:00Z)"),
                )
            }),
        };
        let from = parse(&self.from, default_from, "from")?;
        let to = parse(&self.to, default_to, "to")?;
        if from >= to {
            return Err(("Not a window", "from must be before to.".into()));
        }
        Ok((from, to))
    }
}

fn bad_window((title, text): (&'static str, String)) -> Response {
    html(StatusCode::BAD_REQUEST, pages::message(title, &text))
}

async fn ddor_page(
    State(console): State<Arc<Console>>,
    _: Authed,
    Query(window): Query<Window>,
) -> Response {
    report(&console, &window, "/reports/ddor", async |from, to| {
        let r = console.source.ddor(from, to).await?;
        Ok(r.render(Format::Html))
    })
    .await
}

async fn capacity_page(
    State(console): State<Arc<Console>>,
    _: Authed,
    Query(window): Query<Window>,
) -> Response {
    report(&console, &window, "/reports/capacity", async |from, to| {
        let r = console.source.capacity(from, to).await?;
        r.render(Format::Html).map_err(source::SourceError::Read)
    })
    .await
}

/// A report's own page at `path` for the window asked for: `make` renders it, and the
/// console's navigation and window form go on top.
async fn report(
    console: &Console,
    window: &Window,
    path: &'static str,
    make: impl AsyncFnOnce(Time, Time) -> Result<String, source::SourceError>,
) -> Response {
    let (from, to) = match window.resolve(console) {
        Ok(w) => w,
        Err(e) => return bad_window(e),
    };
    match make(from, to).await {
        Ok(doc) => html(
            StatusCode::OK,
            pages::around_report(&doc, path, &pages::window_form(path, from, to)),
        ),
        Err(e) => failed(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn person_ids_are_checked_as_the_icd_writes_them() {
        assert!(is_person_id("P-170001"));
        assert!(!is_person_id("-P17"));
        assert!(!is_person_id("p-170001"));
        assert!(!is_person_id("P1"));
        assert!(!is_person_id("../etc"));
    }
}
