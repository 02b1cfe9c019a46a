import ArgumentParser
import FieldbookCore
import FieldbookHTTP
import FieldbookInspection
import FieldbookJSON
import FieldbookSchemas
import FieldbookServerProcess
import FieldbookStore
import FieldbookSync
import Foundation

/// `fieldbook demo`: the main job. A sync server on the embedded SQLite store, three
/// devices (the office and two inspectors) that work offline, sync, run into a real conflict,
/// settle it, and end up holding the same ledger.
struct Demo: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Run a sync server and three devices through a district bureau's example: offline work, sync, a conflict, its resolution."
    )

    @Option(help: "Where to put the server's and the devices' files (default: a new temporary directory).")
    var store: String?

    func run() async throws {
        let directory =
            store
            ?? FileManager.default.temporaryDirectory
            .appendingPathComponent("fieldbook-demo-\(UUID().uuidString.prefix(8))").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let schema = try Schema(json: BundledSchemas.inspection)
        let server = try ServerProcess(database: directory + "/server.sqlite")
        defer { server.stop() }
        print("Server: \(server.url.absoluteString)  (fieldbook-server, embedded SQLite: \(directory)/server.sqlite)")

        let names = ["office": "区民政局 王芳", "li": "检查员 李明", "zhang": "检查员 张伟"]
        let (devices, transports) = try openDevices(in: directory, schema: schema, server: server, names: names)
        let office = devices["office"]!
        let li = devices["li"]!
        let zhang = devices["zhang"]!
        func sync(_ key: String) async throws {
            let report = try await devices[key]!.sync(transports[key]!)
            let files =
                report.filesUploaded + report.filesDownloaded > 0
                ? ", files up \(report.filesUploaded) down \(report.filesDownloaded)" : ""
            print(
                "  sync \(pad(names[key]!, to: 13))  pushed \(report.pushed), pulled \(report.pulled), open conflicts \(report.openConflicts)\(files)"
            )
        }
        func syncAll() async throws {
            for key in ["office", "li", "zhang", "office", "li", "zhang"] { try await sync(key) }
        }

        print("\n1. The office enters the inspection round's ledger; everyone syncs.")
        let story = try DemoStory.write(to: office)
        try await syncAll()

        print("\n2. In the field, offline: 李明 and 张伟 visit the same elderly home; the office works on.")
        try await workOffline(story, office: office, li: li, zhang: zhang)
        let photo = try attachEvidence(story, li: li, directory: directory)

        print("\n3. Back in signal, everyone syncs.")
        try await syncAll()
        guard let arrived = try office.filePath(photo.sha256) else {
            throw CLIError(.network, "the office's device did not receive the photo")
        }
        print(
            "   The office's device holds 李明's photo \(photo.name) (\(byteCount(photo.size))), its SHA-256 checked on arrival: \(arrived)"
        )
        try printConflicts(story, office: office, li: li, zhang: zhang, devices: devices, names: names)

        print("\n4. The office settles the deadline (2022-12-31) and everyone syncs.")
        try office.update("finding", id: story.fire, ["deadline": "2022-12-31"])
        try await syncAll()

        print("\n5. The ledger, the same on all three devices and the server:\n")
        try printLedger(office)
        try printAgreement([office, li, zhang])
        try printHistories(story, li: li, zhang: zhang, devices: devices, names: names)
        print("Files: \(directory)")
    }

    /// Opens the three devices' stores in `directory`, each with a transport to `server` under a token of its own.
    func openDevices(in directory: String, schema: Schema, server: ServerProcess, names: [String: String]) throws
        -> (devices: [String: Store], transports: [String: HTTPTransport])
    {
        var devices: [String: Store] = [:]
        var transports: [String: HTTPTransport] = [:]
        for key in ["office", "li", "zhang"] {
            devices[key] = try Store(path: "\(directory)/\(key).sqlite", schema: schema)
            // Every device writes as the office: the story's deadline conflict is between two
            // people who may both move a deadline.
            transports[key] = HTTPTransport(
                server: server.url, token: try server.token(name: names[key]!, role: "office"))
        }
        return (devices, transports)
    }

    /// Step 2: the two inspectors' visits and edits to the same home and finding, and the office's, all offline.
    func workOffline(_ story: DemoStory.Written, office: Store, li: Store, zhang: Store) async throws {
        let fire = story.fire
        try li.insert(
            "visit",
            [
                "site": .text(story.home), "visited_on": "2021-10-12", "inspectors": .set(["李明"]), "problems_found": 2,
                "summary": "复查：消防通道已清理，呼叫装置到货未安装",
            ])
        try zhang.insert(
            "visit",
            ["site": .text(story.home), "visited_on": "2021-10-05", "inspectors": .set(["张伟"]), "problems_found": 1])
        try li.update("site", id: story.home, ["beds_total": 310, "observed_on": "2021-10-12"])
        try li.update("finding", id: fire, ["deadline": "2022-08-31", "results": "呼叫装置已采购"])
        try li.insert("progress_note", ["finding": .text(fire), "text": "现场复查：呼叫装置已到货，待安装", "author": "李明"])
        try zhang.update("site", id: story.home, ["beds_total": 305, "observed_on": "2021-10-05"])
        try zhang.update("finding", id: fire, ["deadline": "2022-12-31"])
        try zhang.insert("progress_note", ["finding": .text(fire), "text": "与运营方约谈，确定安装计划", "author": "张伟"])
        try office.update("finding", id: fire, ["responsible_person": "刘洋"])
        try await office.write { [cemetery = story.cemetery] in
            try $0.increment("site", id: cemetery, "illegal_graves_found", by: 1)
        }
        print(
            "   pending: office \(try office.pendingCount()), 李明 \(try li.pendingCount()), 张伟 \(try zhang.pendingCount())"
        )
    }

    /// Step 2, still offline: 李明 photographs the cleared fire escape and attaches it to the finding
    /// as evidence; the photo is kept on the device until the next sync uploads it.
    func attachEvidence(_ story: DemoStory.Written, li: Store, directory: String) throws -> Attachment {
        let path = directory + "/消防通道已清理.jpg"
        var bytes: [UInt8] = [0xFF, 0xD8, 0xFF, 0xE0]
        var state: UInt32 = 2021
        while bytes.count < 180 * 1024 {
            state = state &* 1_664_525 &+ 1_013_904_223
            bytes.append(UInt8(truncatingIfNeeded: state >> 24))
        }
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        let photo = try li.attach("finding", id: story.fire, field: "evidence", files: [path])[0]
        print(
            "   李明 attaches a photo of the cleared fire escape to the finding, offline: \(photo.name) (\(byteCount(photo.size))), kept on the device until the next sync"
        )
        return photo
    }

    /// Step 3: the beds count every device settled on, and the deadline conflict every device holds.
    func printConflicts(
        _ story: DemoStory.Written, office: Store, li: Store, zhang: Store, devices: [String: Store],
        names: [String: String]
    ) throws {
        let beds = try office.record("site", id: story.home)?["beds_total"] ?? .null
        print(
            "   Beds: 李明 counted 310 on 2021-10-12, 张伟 305 on 2021-10-05 → \(beds) everywhere (the later visit wins).")
        let conflicts = try office.conflicts()
        var table = TextTable(["冲突 Conflict", "字段 Field", "值 Value", "谁 Who", "时间 When"])
        for conflict in conflicts {
            for side in conflict.sides {
                table.append([
                    conflict.entity, conflict.field ?? "(delete)", side.deletes ? "(deleted)" : side.value.description,
                    deviceName(side.stamp.device, devices, names),
                    CalendarText.timestamp(millisecondsSince1970: Int64(side.stamp.timestamp.millis)),
                ])
            }
        }
        print(
            "   The deadline was moved twice, offline: the same conflict on every device (\(try li.conflicts().count), \(try zhang.conflicts().count), \(conflicts.count)):"
        )
        print(table.render(indent: 3))
    }

    /// Whether the devices hold the same ledger, and how many conflicts are open on them all.
    func printAgreement(_ stores: [Store]) throws {
        let snapshots = try stores.map { try ledgerExport($0) }
        let agree = snapshots.allSatisfy { $0 == snapshots[0] }
        print(
            "Devices agree: \(agree ? "yes" : "NO"); open conflicts: \(try stores.reduce(0) { try $0 + $1.conflicts().count })\n"
        )
    }

    /// The history of the fire-safety finding (who, on which device) and of the corrected cemetery record.
    func printHistories(
        _ story: DemoStory.Written, li: Store, zhang: Store, devices: [String: Store], names: [String: String]
    ) throws {
        print("History of the fire-safety finding (who, on which device):")
        var history = TextTable(["时间 When", "谁 Who", "字段 Field", "旧 Old", "新 New"])
        for entry in try zhang.history(of: story.fire) where entry.field != nil {
            history.append([
                CalendarText.timestamp(millisecondsSince1970: Int64(entry.timestamp.millis)),
                entry.author ?? deviceName(entry.device, devices, names), entry.field ?? "", entry.old.description,
                entry.new.description,
            ])
        }
        print(history.render() + "\n")
        print("History of the cemetery record (a corrected count):")
        var cemetery = TextTable(["时间 When", "字段 Field", "旧 Old", "新 New"])
        for entry in try li.history(of: story.cemetery) where entry.field != nil {
            cemetery.append([
                CalendarText.timestamp(millisecondsSince1970: Int64(entry.timestamp.millis)), entry.field ?? "",
                entry.old.description, entry.new.description,
            ])
        }
        print(cemetery.render() + "\n")
    }

    func deviceName(_ device: String, _ devices: [String: Store], _ names: [String: String]) -> String {
        devices.first { $0.value.deviceID == device }.map { names[$0.key]! } ?? String(device.prefix(8))
    }

    /// Every record of every entity, as JSON text: what "the same ledger" means.
    func ledgerExport(_ store: Store) throws -> String {
        try store.schema.entities.map { entity in
            try store.fetch(Query(entity.name)).map(\.json.serialized).joined(separator: "\n")
        }.joined(separator: "\n")
    }

    func printLedger(_ device: Store) throws {
        var sites = TextTable(["场所 Site", "类别 Kind", "运营方 Operator", "床位 Beds", "护理 Nursing", "标签 Tags"])
        for site in try device.fetch(Site.self, where: { $0.sorted(by: "kind").sorted(by: "name") }) {
            sites.append([
                site.name, site.kind.rawValue, site.operator?.rawValue ?? "", site.bedsTotal.map(String.init) ?? "",
                site.nursingBeds.map(String.init) ?? "", site.tags.sorted().joined(separator: ", "),
            ])
        }
        print(sites.render() + "\n")

        var findings = TextTable(["问题 Finding", "状态 Status", "整改期限 Deadline", "责任人 Person", "措施 Measures", "进展 Notes"])
        for finding in try device.fetch(Finding.self, where: { $0.sorted(by: "deadline") }) {
            let measures = try device.fetch(Query("measure").filter("finding", .equal, .text(finding.id))).count
            let notes = try device.fetch(Query("progress_note").filter("finding", .equal, .text(finding.id))).count
            findings.append([
                finding.title, finding.status.rawValue, finding.deadline?.description ?? "",
                finding.responsiblePerson ?? "", String(measures), String(notes),
            ])
        }
        print(findings.render() + "\n")

        // The report a bureau publishes, as `fieldbook report` prints it.
        print(try LedgerReport(device, day: "2022-07-01").render())
    }
}

/// Example data from a district's published rectification report (Putian Licheng; docs/domain.md).
enum DemoStory {
    struct Written {
        var cemetery: String
        var home: String
        var fire: String
    }

    static func write(to store: Store) throws -> Written {
        let round = try store.insert(
            InspectionRound(
                title: "区委第一巡察组对区民政局开展常规巡察", team: "区委第一巡察组", unit: "区民政局",
                startedOn: CalendarDate("2021-08-16"), endedOn: CalendarDate("2021-09-30"),
                feedbackOn: CalendarDate("2021-11-16")))
        let sites = try writeSites(to: store)
        let visit = try writeVisits(to: store, round: round.id, sites: sites)
        var findings = try writeFindings(to: store, round: round.id, visit: visit.id, sites: sites)
        try writeMeasures(to: store, findings: findings)
        try writeFollowUps(to: store, findings: findings)
        try correctLater(in: store, cemetery: sites.cemetery.id, fire: &findings.fire)
        return Written(cemetery: sites.cemetery.id, home: sites.home.id, fire: findings.fire.id)
    }

    /// The district's sites; returns the three the story goes on with.
    private static func writeSites(to store: Store) throws -> (station: Site, home: Site, cemetery: Site) {
        let station = try store.insert(
            Site(
                name: "新度镇社会工作服务站", kind: .socialWorkStation, town: "新度镇", starRating: 4,
                observedOn: CalendarDate("2021-09-02"), tags: ["省级示范点"]))
        let home = try store.insert(
            Site(
                name: "城厢区公建民营敬老院", kind: .elderlyHome, town: "霞林街道", operator: .publicBuiltPrivateRun,
                bedsTotal: 300, nursingBeds: 240, observedOn: CalendarDate("2021-09-06")))
        _ = try store.insert(
            Site(
                name: "荔城区公建民营敬老院", kind: .elderlyHome, town: "拱辰街道", operator: .publicBuiltPrivateRun,
                bedsTotal: 259, nursingBeds: 201, observedOn: CalendarDate("2021-09-06")))
        _ = try store.insert(
            Site(
                name: "东海镇农村幸福院", kind: .happinessHome, town: "东海镇", village: "东海村", meetsSixHaves: true,
                observedOn: CalendarDate("2021-09-08")))
        _ = try store.insert(
            Site(name: "黄石镇长者食堂", kind: .elderCanteen, town: "黄石镇", operator: .thirdParty))
        let cemetery = try store.insert(Site(name: "西天尾镇公益性公墓", kind: .cemetery, town: "西天尾镇", tags: ["42户56穴"]))
        return (station, home, cemetery)
    }

    /// The round's visits to the elderly home and the station; returns the home's.
    private static func writeVisits(
        to store: Store, round: String, sites: (station: Site, home: Site, cemetery: Site)
    ) throws -> Visit {
        let visit = try store.insert(
            Visit(
                site: sites.home.id, round: round, visitedOn: CalendarDate("2021-09-06")!, inspectors: ["张伟", "王芳"],
                summary: "全覆盖督查公建民营养老机构，发现问题14个，其中共性问题8个", problemsFound: 14,
                penaltyYuan: 4000, recoveredYuan: 25131))
        _ = try store.insert(
            Visit(
                site: sites.station.id, round: round, visitedOn: CalendarDate("2021-09-02")!, inspectors: ["李娜"],
                summary: "省级示范点，服务开展正常"))
        return visit
    }

    /// The round's findings; returns the three the measures and the story go on with.
    private static func writeFindings(
        to store: Store, round: String, visit: String, sites: (station: Site, home: Site, cemetery: Site)
    ) throws -> (fee: Finding, fire: Finding, graves: Finding) {
        let fee = try store.insert(
            Finding(
                round: round, visit: visit, site: sites.home.id, aspect: .misconductNearPeople, category: "养老服务",
                title: "公建民营养老机构违约金未按合同收缴", status: .completed, deadline: CalendarDate("2021-12-31"),
                responsibleLeader: "陈静", responsibleUnit: "养老服务科", responsiblePerson: "刘洋",
                results: "违约金4000元已缴纳", rectifiedOn: CalendarDate("2021-12-20")))
        let fire = try store.insert(
            Finding(
                round: round, visit: visit, site: sites.home.id, aspect: .policyImplementation, category: "安全管理",
                title: "部分护理床位未配备呼叫装置，消防通道堆放杂物", status: .inProgress, deadline: CalendarDate("2022-06-30"),
                responsibleLeader: "陈静", responsibleUnit: "养老服务科", responsiblePerson: "王芳",
                results: "已清理消防通道", nextSteps: "2022年内完成呼叫装置安装"))
        let graves = try store.insert(
            Finding(
                round: round, site: sites.cemetery.id, aspect: .policyImplementation, category: "殡葬管理",
                title: "公墓台账数据不准确", deadline: CalendarDate("2022-03-31"), responsibleUnit: "社会事务科",
                responsiblePerson: "张伟"))
        _ = try store.insert(
            Finding(
                round: round, aspect: .partyOrganisation, category: "党建", title: "长效机制建设不到位",
                status: .inProgress, responsibleLeader: "陈静", longTerm: true))
        return (fee, fire, graves)
    }

    /// The measures taken for the findings.
    private static func writeMeasures(
        to store: Store, findings: (fee: Finding, fire: Finding, graves: Finding)
    ) throws {
        _ = try store.insert(
            Measure(
                finding: findings.fee.id, description: "督促运营方缴纳违约金", responsiblePerson: "刘洋",
                deadline: CalendarDate("2021-12-31"), status: .completed))
        _ = try store.insert(
            Measure(
                finding: findings.fire.id, description: "清理消防通道，建立日常巡查制度", responsiblePerson: "王芳",
                deadline: CalendarDate("2021-12-31"), status: .completed))
        _ = try store.insert(
            Measure(
                finding: findings.fire.id, description: "为护理床位安装呼叫装置", responsiblePerson: "王芳",
                deadline: CalendarDate("2022-06-30"), status: .inProgress))
        _ = try store.insert(
            Measure(
                finding: findings.graves.id, description: "逐户核对公墓台账", responsiblePerson: "张伟",
                deadline: CalendarDate("2022-03-31")))
    }

    /// The people held accountable for the fee finding, and a progress note on the fire-safety one.
    private static func writeFollowUps(
        to store: Store, findings: (fee: Finding, fire: Finding, graves: Finding)
    ) throws {
        for (person, kind) in [
            ("某某甲", AccountabilityAction.Kind.admonishment), ("某某乙", .criticism), ("某某丙", .reminder),
            ("某某丁", .reminder),
        ] {
            _ = try store.insert(
                AccountabilityAction(
                    finding: findings.fee.id, person: person, kind: kind, decidedOn: CalendarDate("2021-12-10"))
            )
        }
        _ = try store.insert(
            ProgressNote(
                finding: findings.fire.id, text: "消防通道已清理完毕，建立日常巡查台账", author: "王芳", writtenAt: Date()))
    }

    /// Later, offline in the field: a corrected record and a deadline moved.
    private static func correctLater(in store: Store, cemetery: String, fire: inout Finding) throws {
        var site = try store.fetch(Site.self, id: cemetery)!
        site.tags = ["42户56墓"]
        site.illegalGravesFound = 3
        try store.save(site)
        fire.deadline = CalendarDate("2022-09-30")
        try store.save(fire)
        try store.write { try $0.increment("site", id: cemetery, "illegal_graves_found", by: 2) }
    }
}
