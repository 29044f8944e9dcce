use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(resave = "false")]
struct Visit {
    views: u64,
}

fn main() {}
