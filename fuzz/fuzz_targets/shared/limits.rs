//! The codec limits the frame, deflate and dissect targets choose from with
//! two bits of their configuration byte (included by each with `#[path]`;
//! not a target of its own).

use wschat::ws::Limits;

/// Chat-sized limits, tiny ones that fill up after a few frames, a frame
/// limit above the message limit, and one large enough for the 64 KiB
/// frames of RFC 6455 §5.7.
pub const LIMITS: [Limits; 4] = [
    Limits {
        max_frame_size: 256,
        max_message_size: 1024,
    },
    Limits {
        max_frame_size: 16,
        max_message_size: 64,
    },
    Limits {
        max_frame_size: 1024,
        max_message_size: 256,
    },
    Limits {
        max_frame_size: 1 << 17,
        max_message_size: 1 << 17,
    },
];
