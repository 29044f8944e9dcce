use tessera::SessionData;

#[derive(SessionData, Default)]
struct Visit {
    #[session(rename = "cookie")]
    jar: String,
}

fn main() {}
