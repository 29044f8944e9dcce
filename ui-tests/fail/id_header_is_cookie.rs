use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(id_header = "Cookie")]
struct Visit {
    views: u64,
}

fn main() {}
