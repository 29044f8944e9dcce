use tessera::{Session, SessionData};

// A misconfigured option is the only error: the impl is still generated (with the
// valid options), so code that uses the session does not add a cascade of errors.
#[derive(SessionData, Default)]
#[session(cookie(max_age = "forever"))]
struct Visit {
    views: u64,
}

#[allow(dead_code)]
async fn handler(mut session: Session<Visit>) -> String {
    *session.views += 1;
    session.views.to_string()
}

fn main() {}
