use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(max_age = "30m")]
struct Visit {
    views: u64,
}

fn main() {}
