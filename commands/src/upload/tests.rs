//! UPLOAD's request on the wire, read back as written.

use super::*;

#[test]
fn a_request_reads_back_as_it_was_written() {
    for mode in [Mode::Ready, Mode::Resume, Mode::Eager] {
        for into in [None, Some("a b")] {
            let request = Request {
                path: "/dir/my file ✓",
                size: 42,
                mtime: 1_700_000_000,
                mode,
                into,
            };
            let frame = request.frame(Kind::Chained);
            assert_eq!(frame.words[0], "UPLOAD");
            assert_eq!(Request::from_words(&frame.words[1..]).unwrap(), request);
        }
    }
}

#[test]
fn an_eager_request_that_cannot_be_read_past_is_fatal() {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let bad_size = Request::from_words(&words(&["/a", "x", "0", "eager"])).unwrap_err();
    assert!(bad_size.fatal);
    let bad_time = Request::from_words(&words(&["/a", "1", "x", "eager"])).unwrap_err();
    assert!(bad_time.fatal);
    assert!(
        !Request::from_words(&words(&["/a", "x", "0", "ready"]))
            .unwrap_err()
            .fatal
    );
    let too_big = (EAGER_MAX + 1).to_string();
    assert!(
        Request::from_words(&words(&["/a", &too_big, "0", "eager"]))
            .unwrap_err()
            .fatal
    );
    let odd = Request::from_words(&words(&["/a", "1", "0", "later"])).unwrap_err();
    assert_eq!((odd.kind, odd.fatal), (ErrorKind::BadRequest, false));
}

#[test]
fn a_time_past_the_year_9999_is_refused_by_name_and_the_last_second_is_taken() {
    let words = |w: &[&str]| w.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let last = ferry_core::store::MAX_MTIME.to_string();
    assert!(Request::from_words(&words(&["/a", "1", &last, "eager"])).is_ok());
    for past in [
        (ferry_core::store::MAX_MTIME + 1).to_string(),
        u64::MAX.to_string(),
    ] {
        for mode in ["ready", "eager"] {
            let refused = Request::from_words(&words(&["/a", "1", &past, mode])).unwrap_err();
            assert_eq!(refused.kind, ErrorKind::BadRequest);
            assert_eq!(
                refused.message,
                format!("mtime '{past}' is past the year 9999")
            );
            assert_eq!(refused.fatal, mode == "eager");
        }
    }
}
