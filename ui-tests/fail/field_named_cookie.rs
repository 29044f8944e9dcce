use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    cookie: String,
}

fn main() {}
