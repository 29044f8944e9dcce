use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(id_header = "X Session")]
struct Visit {
    views: u64,
}

fn main() {}
