/// What `fieldbook-power-cut` writes to `manifest.json` and the power-cut test reads: the devices,
/// and for each simulated cut, what every device had sent or flushed and the server acknowledged.
public struct PowerCutManifest: Codable, Sendable {
    /// One device of the run.
    public struct Device: Codable, Sendable {
        /// Its store's file name in each cut's directory.
        public var file: String
        /// Its device id.
        public var id: String
        /// Its bearer token on the server.
        public var token: String

        public init(file: String, id: String, token: String) {
            self.file = file
            self.id = id
            self.token = token
        }
    }

    /// One simulated power cut.
    public struct Cut: Codable, Sendable {
        /// The directory holding the files as the cut leaves them.
        public var directory: String
        /// The moment of the cut, in recorded operations.
        public var clock: Int64
        /// By device id: the last sequence number it had sent (or begun to send) by then.
        public var sent: [String: Int64]
        /// By device id: the last sequence number it had flushed by then.
        public var flushed: [String: Int64]
        /// By device id: the last sequence number the server had acknowledged by then.
        public var acknowledged: [String: Int64]

        public init(
            directory: String, clock: Int64, sent: [String: Int64], flushed: [String: Int64],
            acknowledged: [String: Int64]
        ) {
            self.directory = directory
            self.clock = clock
            self.sent = sent
            self.flushed = flushed
            self.acknowledged = acknowledged
        }
    }

    /// The run's devices.
    public var devices: [Device]
    /// The cuts, in the order of the run.
    public var cuts: [Cut]

    public init(devices: [Device], cuts: [Cut]) {
        self.devices = devices
        self.cuts = cuts
    }
}
