use tessera::SessionData;

#[derive(SessionData, Default)]
#[session(cookie(max_age = "60000ms"))]
struct Millis {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(max_age = "7d"))]
struct Days {
    a: u8,
}

#[derive(SessionData, Default)]
#[session(cookie(expires = "2999-01-01T00:00:00Z"))]
struct Fixed {
    a: u8,
}

fn main() {}
