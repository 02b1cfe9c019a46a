/// Who made a change and what its writer had seen: enough to tell, on any
/// peer, whether one change was made knowing another.
///
/// A device's changes are numbered 1, 2, 3, … and its later changes saw its
/// earlier ones. A change from another device was seen if the server had
/// ordered it at or below the cursor (``base``) the writer had pulled to:
/// a device applies every server change up to its cursor before it writes.
/// Two changes neither of which saw the other are *concurrent*; only those
/// are merged by the field's policy (docs/protocol.md, "Merge").
public struct ChangeStamp: Sendable, Hashable {
    /// The device that made the change.
    public var device: String
    /// The device's sequence number of the change.
    public var sequence: Int64
    /// When the change was made.
    public var timestamp: HybridTimestamp
    /// The server cursor the writer had pulled to.
    public var base: Int64
    /// The server's sequence number of the change; nil until the server has it.
    public var serverSequence: Int64?

    /// A stamp from its parts; `serverSequence` is nil until the server has the change.
    public init(device: String, sequence: Int64, timestamp: HybridTimestamp, base: Int64, serverSequence: Int64? = nil)
    {
        self.device = device
        self.sequence = sequence
        self.timestamp = timestamp
        self.base = base
        self.serverSequence = serverSequence
    }

    /// Whether the writer of this change had seen `other` (or it is `other`).
    public func saw(_ other: ChangeStamp) -> Bool {
        if device == other.device { return other.sequence <= sequence }
        guard let serverSequence = other.serverSequence else { return false }
        return serverSequence <= base
    }

    /// The order that breaks ties between concurrent changes: timestamp, then device id.
    public func precedes(_ other: ChangeStamp) -> Bool {
        if timestamp != other.timestamp { return timestamp < other.timestamp }
        return device.utf8.lexicographicallyPrecedes(other.device.utf8)
    }
}

extension Change {
    /// This change's stamp.
    public var stamp: ChangeStamp {
        ChangeStamp(
            device: device, sequence: sequence, timestamp: timestamp, base: base, serverSequence: serverSequence)
    }
}
