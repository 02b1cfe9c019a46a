import ArgumentParser
import FieldbookCore
import FieldbookSchemas
import FieldbookStore
import Foundation

/// `fieldbook demo`: a device store filled with the domain's example sites and findings.
struct Demo: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Create a device store with DOMAIN.md's example sites and findings, and show them with their history.")

    @Option(help: "Where to create the store (default: a new temporary directory).")
    var store: String?

    func run() throws {
        let directory = store ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("fieldbook-demo-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/device.sqlite"
        let schema = try Schema(json: BundledSchemas.inspection)
        let device = try Store(path: path, schema: schema)
        print("Device store: \(path)  (device \(device.deviceID.prefix(8)), schema \(schema.name) v\(schema.version))\n")

        let story = try DemoStory.write(to: device)

        var sites = TextTable(["场所 Site", "类别 Kind", "运营方 Operator", "床位 Beds", "护理 Nursing", "标签 Tags"])
        for site in try device.fetch(Site.self, where: { $0.sorted(by: "kind").sorted(by: "name") }) {
            sites.append([
                site.name, site.kind.rawValue, site.operator?.rawValue ?? "", site.bedsTotal.map(String.init) ?? "",
                site.nursingBeds.map(String.init) ?? "", site.tags.sorted().joined(separator: ", "),
            ])
        }
        print(sites.render() + "\n")

        var findings = TextTable(["问题 Finding", "状态 Status", "整改期限 Deadline", "责任人 Person", "措施 Measures"])
        for finding in try device.fetch(Finding.self, where: { $0.sorted(by: "deadline") }) {
            let measures = try device.fetch(Query("measure").filter("finding", .equal, .text(finding.id))).count
            findings.append([
                finding.title, finding.status.rawValue, finding.deadline?.description ?? "",
                finding.responsiblePerson ?? "", String(measures),
            ])
        }
        print(findings.render() + "\n")

        // The tallies a bureau publishes, computed from the ledger.
        let all = try device.fetch(Finding.self)
        let byStatus = RectificationStatus.allCases.map { status in "\(status.rawValue) \(all.filter { $0.status == status }.count)" }
        let actions = try device.fetch(AccountabilityAction.self)
        let byKind = AccountabilityAction.Kind.allCases.map { kind in "\(kind.rawValue) \(actions.filter { $0.kind == kind }.count)" }
        let visits = try device.fetch(Visit.self)
        print("Findings: \(all.count) (\(byStatus.joined(separator: ", ")))")
        print("Accountability: \(byKind.joined(separator: ", "))")
        print("Penalties: \(visits.compactMap(\.penaltyYuan).reduce(0, +)) yuan; recovered: \(visits.compactMap(\.recoveredYuan).reduce(0, +)) yuan\n")

        print("History of the cemetery record (a corrected count):")
        var history = TextTable(["时间 When", "设备 Device", "字段 Field", "旧 Old", "新 New"])
        for entry in try device.history(of: story.cemetery) {
            history.append([
                CalendarText.timestamp(millisecondsSince1970: Int64(entry.timestamp.millis)), String(entry.device.prefix(8)),
                entry.field ?? "(deleted)", entry.old.description, entry.new.description,
            ])
        }
        print(history.render() + "\n")
        print("Pending changes to sync: \(try device.pendingCount())")
    }
}

/// The example data of DOMAIN.md (Putian Licheng district's rectification report).
enum DemoStory {
    struct Written {
        var cemetery: String
    }

    static func write(to store: Store) throws -> Written {
        let round = try store.insert(
            InspectionRound(
                title: "区委第一巡察组对区民政局开展常规巡察", team: "区委第一巡察组", unit: "区民政局",
                startedOn: CalendarDate("2021-08-16"), endedOn: CalendarDate("2021-09-30"), feedbackOn: CalendarDate("2021-11-16")))
        let station = try store.insert(
            Site(name: "新度镇社会工作服务站", kind: .socialWorkStation, town: "新度镇", starRating: 4,
                 observedOn: CalendarDate("2021-09-02"), tags: ["省级示范点"]))
        let home = try store.insert(
            Site(name: "城厢区公建民营敬老院", kind: .elderlyHome, town: "霞林街道", operator: .publicBuiltPrivateRun,
                 bedsTotal: 300, nursingBeds: 240, observedOn: CalendarDate("2021-09-06")))
        _ = try store.insert(
            Site(name: "荔城区公建民营敬老院", kind: .elderlyHome, town: "拱辰街道", operator: .publicBuiltPrivateRun,
                 bedsTotal: 259, nursingBeds: 201, observedOn: CalendarDate("2021-09-06")))
        _ = try store.insert(
            Site(name: "东海镇农村幸福院", kind: .happinessHome, town: "东海镇", village: "东海村", meetsSixHaves: true,
                 observedOn: CalendarDate("2021-09-08")))
        _ = try store.insert(
            Site(name: "黄石镇长者食堂", kind: .elderCanteen, town: "黄石镇", operator: .thirdParty))
        let cemetery = try store.insert(Site(name: "西天尾镇公益性公墓", kind: .cemetery, town: "西天尾镇", tags: ["42户56穴"]))

        let visit = try store.insert(
            Visit(site: home.id, round: round.id, visitedOn: CalendarDate("2021-09-06")!, inspectors: ["张伟", "王芳"],
                  summary: "全覆盖督查公建民营养老机构，发现问题14个，其中共性问题8个", problemsFound: 14,
                  penaltyYuan: 4000, recoveredYuan: 25131))
        _ = try store.insert(
            Visit(site: station.id, round: round.id, visitedOn: CalendarDate("2021-09-02")!, inspectors: ["李娜"],
                  summary: "省级示范点，服务开展正常"))

        let fee = try store.insert(
            Finding(round: round.id, visit: visit.id, site: home.id, aspect: .misconductNearPeople, category: "养老服务",
                    title: "公建民营养老机构违约金未按合同收缴", status: .completed, deadline: CalendarDate("2021-12-31"),
                    responsibleLeader: "陈静", responsibleUnit: "养老服务科", responsiblePerson: "刘洋",
                    results: "违约金4000元已缴纳", rectifiedOn: CalendarDate("2021-12-20")))
        var fire = try store.insert(
            Finding(round: round.id, visit: visit.id, site: home.id, aspect: .policyImplementation, category: "安全管理",
                    title: "部分护理床位未配备呼叫装置，消防通道堆放杂物", status: .inProgress, deadline: CalendarDate("2022-06-30"),
                    responsibleLeader: "陈静", responsibleUnit: "养老服务科", responsiblePerson: "王芳",
                    results: "已清理消防通道", nextSteps: "2022年内完成呼叫装置安装"))
        let graves = try store.insert(
            Finding(round: round.id, site: cemetery.id, aspect: .policyImplementation, category: "殡葬管理",
                    title: "公墓台账数据不准确", deadline: CalendarDate("2022-03-31"), responsibleUnit: "社会事务科",
                    responsiblePerson: "张伟"))
        _ = try store.insert(
            Finding(round: round.id, aspect: .partyOrganisation, category: "党建", title: "长效机制建设不到位",
                    status: .inProgress, responsibleLeader: "陈静", longTerm: true))

        _ = try store.insert(Measure(finding: fee.id, description: "督促运营方缴纳违约金", responsiblePerson: "刘洋",
                                     deadline: CalendarDate("2021-12-31"), status: .completed))
        _ = try store.insert(Measure(finding: fire.id, description: "清理消防通道，建立日常巡查制度", responsiblePerson: "王芳",
                                     deadline: CalendarDate("2021-12-31"), status: .completed))
        _ = try store.insert(Measure(finding: fire.id, description: "为护理床位安装呼叫装置", responsiblePerson: "王芳",
                                     deadline: CalendarDate("2022-06-30"), status: .inProgress))
        _ = try store.insert(Measure(finding: graves.id, description: "逐户核对公墓台账", responsiblePerson: "张伟",
                                     deadline: CalendarDate("2022-03-31")))

        for (person, kind) in [("某某甲", AccountabilityAction.Kind.admonishment), ("某某乙", .criticism), ("某某丙", .reminder), ("某某丁", .reminder)] {
            _ = try store.insert(AccountabilityAction(finding: fee.id, person: person, kind: kind, decidedOn: CalendarDate("2021-12-10")))
        }
        _ = try store.insert(ProgressNote(finding: fire.id, text: "消防通道已清理完毕，建立日常巡查台账", author: "王芳", writtenAt: Date()))

        // Later, offline in the field: a corrected record and a deadline moved.
        var site = try store.fetch(Site.self, id: cemetery.id)!
        site.tags = ["42户56墓"]
        site.illegalGravesFound = 3
        try store.save(site)
        fire.deadline = CalendarDate("2022-09-30")
        try store.save(fire)
        try store.write { try $0.increment("site", id: cemetery.id, "illegal_graves_found", by: 2) }
        return Written(cemetery: cemetery.id)
    }
}
