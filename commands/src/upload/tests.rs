//! UPLOAD's request on the wire, read back as written.

use super::*;

#[test]
fn a_request_reads_back_as_it_was_written() {
    for mode in [Mode::Ready, Mode::Resume, Mode::Eager] {
        let request = Request {
            name: "my file ✓",
            size: 42,
            mode,
        };
        let frame = request.frame(Kind::Chained);
        assert_eq!(frame.words[0], "UPLOAD");
        assert_eq!(Request::from_words(&frame.words[1..]).unwrap(), request);
    }
}

#[test]
fn an_eager_request_that_cannot_be_read_past_is_fatal() {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let bad_size = Request::from_words(&words(&["a", "x", "eager"])).unwrap_err();
    assert!(bad_size.fatal);
    assert!(!Request::from_words(&words(&["a", "x"])).unwrap_err().fatal);
    let too_big = (EAGER_MAX + 1).to_string();
    assert!(
        Request::from_words(&words(&["a", &too_big, "eager"]))
            .unwrap_err()
            .fatal
    );
    let odd = Request::from_words(&words(&["a", "1", "later"])).unwrap_err();
    assert_eq!((odd.kind, odd.fatal), (ErrorKind::BadRequest, false));
}
