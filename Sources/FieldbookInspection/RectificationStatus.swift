/// Where a finding or a measure stands in its rectification (整改).
public enum RectificationStatus: String, Codable, Sendable, CaseIterable, Comparable {
    /// 尚未启动
    case notStarted = "not_started"
    /// 正在推进 (including "basically completed")
    case inProgress = "in_progress"
    /// 已整改完成: reported rectified, awaiting the office's acceptance.
    case completed
    /// 已销号: verified and closed off by the office (findings only; a measure ends at completed).
    case closed

    /// Ordered as a rectification goes: not started, in progress, completed, closed.
    public static func < (lhs: Self, rhs: Self) -> Bool {
        allCases.firstIndex(of: lhs)! < allCases.firstIndex(of: rhs)!
    }
}
