/// The schema files in `Schemas/`, compiled into every binary.
public enum BundledSchemas {
    /// The bytes of `Schemas/inspection.json`.
    public static var inspection: [UInt8] { PackageResources.inspection_json }
}
