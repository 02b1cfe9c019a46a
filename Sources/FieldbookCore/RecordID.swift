/// Record ids: UUIDs written as 36 lower-case characters, made on the device.
///
/// New ids are UUID version 7 (RFC 9562): the first 48 bits are the creation
/// time in milliseconds, so ids made one after another sort together and a
/// B-tree keyed by them grows at its end instead of splitting pages at random.
public enum UUIDText {
    static let hex: [UInt8] = Array("0123456789abcdef".utf8)

    /// The canonical lower-case form of a UUID written in any case, or nil if `text` is not a UUID.
    public static func canonical(_ text: String) -> String? {
        if isCanonical(text) { return text }
        guard let bytes = parse(text) else { return nil }
        return format(bytes)
    }

    /// Whether `text` is already a lower-case UUID (the common case, checked without allocating).
    public static func isCanonical(_ text: String) -> Bool {
        text.utf8.withContiguousStorageIfAvailable { utf8 in
            guard utf8.count == 36 else { return false }
            for n in 0..<36 {
                let c = utf8[n]
                if n == 8 || n == 13 || n == 18 || n == 23 {
                    if c != UInt8(ascii: "-") { return false }
                } else if !((c &- UInt8(ascii: "0")) < 10 || (c &- UInt8(ascii: "a")) < 6) {
                    return false
                }
            }
            return true
        } ?? (parse(text).map(format) == text)
    }

    /// The 16 bytes of a UUID written `8-4-4-4-12` in hex (any case).
    public static func parse(_ text: String) -> [UInt8]? {
        let utf8 = Array(text.utf8)
        guard utf8.count == 36 else { return nil }
        var out: [UInt8] = []
        out.reserveCapacity(16)
        var n = 0
        while n < 36 {
            if n == 8 || n == 13 || n == 18 || n == 23 {
                guard utf8[n] == UInt8(ascii: "-") else { return nil }
                n += 1
                continue
            }
            guard let hi = nibble(utf8[n]), let lo = nibble(utf8[n + 1]) else { return nil }
            out.append(hi << 4 | lo)
            n += 2
        }
        return out
    }

    static func nibble(_ c: UInt8) -> UInt8? {
        switch c {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): c - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): c - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): c - UInt8(ascii: "A") + 10
        default: nil
        }
    }

    /// 16 bytes written as a lower-case UUID.
    public static func format(_ bytes: some Collection<UInt8>) -> String {
        precondition(bytes.count == 16)
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var n = 0
            for (i, byte) in bytes.enumerated() {
                if i == 4 || i == 6 || i == 8 || i == 10 {
                    buffer[n] = UInt8(ascii: "-")
                    n += 1
                }
                buffer[n] = hex[Int(byte >> 4)]
                buffer[n + 1] = hex[Int(byte & 0xF)]
                n += 2
            }
            return 36
        }
    }
}

/// Makes UUID version 7 ids: time-ordered, and strictly increasing from one generator.
///
/// Within one millisecond the 12-bit `rand_a` field counts up (RFC 9562,
/// method 1); the remaining 62 bits are random, from a generator seeded by the
/// system's random source.
public struct UUIDv7Generator: Sendable {
    private var lastMillis: UInt64 = 0
    private var sequence: UInt16 = 0
    private var random: WyRand

    /// A generator seeded from the system's random source.
    public init() {
        var system = SystemRandomNumberGenerator()
        random = WyRand(seed: system.next())
    }

    /// A new id for the wall-clock time `millis` (milliseconds since 1970).
    public mutating func next(millis: UInt64) -> String {
        var ms = millis
        if ms > lastMillis {
            lastMillis = ms
            sequence = UInt16(truncatingIfNeeded: random.next() & 0x3FF)  // leave room to count up
        } else {
            ms = lastMillis
            if sequence >= 0xFFF {
                lastMillis += 1
                ms = lastMillis
                sequence = 0
            } else {
                sequence += 1
            }
        }
        let r = random.next()
        var bytes = [UInt8](repeating: 0, count: 16)
        for i in 0..<6 { bytes[i] = UInt8(truncatingIfNeeded: ms >> (40 - 8 * UInt64(i))) }
        bytes[6] = 0x70 | UInt8(truncatingIfNeeded: sequence >> 8)
        bytes[7] = UInt8(truncatingIfNeeded: sequence)
        bytes[8] = 0x80 | UInt8(truncatingIfNeeded: r >> 58)
        for i in 9..<16 { bytes[i] = UInt8(truncatingIfNeeded: r >> (8 * UInt64(15 - i))) }
        return UUIDText.format(bytes)
    }
}

/// wyrand: a small, fast, well-distributed 64-bit generator.
struct WyRand: RandomNumberGenerator, Sendable {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    mutating func next() -> UInt64 {
        state &+= 0xA076_1D64_78BD_642F
        let product = state.multipliedFullWidth(by: state ^ 0xE703_7ED1_A0B4_28DB)
        return product.high ^ product.low
    }
}
