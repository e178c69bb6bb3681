//! `init_logging` sets this process's subscriber once, at the level asked (its own test
//! binary: a global subscriber would leak into other tests).

use theta_net::server::init_logging;

#[test]
fn logging_is_set_once_at_the_level_asked() {
    let err = init_logging("loud").unwrap_err();
    assert!(err.contains("invalid log level \"loud\""), "{err}");
    // A refused level set nothing.
    assert!(!tracing::enabled!(tracing::Level::ERROR));

    init_logging("debug").unwrap();
    assert!(tracing::enabled!(tracing::Level::INFO));
    assert!(tracing::enabled!(tracing::Level::DEBUG));
    assert!(!tracing::enabled!(tracing::Level::TRACE));
    tracing::info!("logging set up");

    let err = init_logging("trace").unwrap_err();
    assert!(err.contains("set up already"), "{err}");
    assert!(!tracing::enabled!(tracing::Level::TRACE), "unchanged");
}
