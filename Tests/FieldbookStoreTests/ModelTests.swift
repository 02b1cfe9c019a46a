import FieldbookCore
import FieldbookInspection
import FieldbookStore
import FieldbookTesting
import Foundation
import Testing

@Suite("Store: typed models", .tags(.store))
struct ModelTests {
    let dir = TemporaryDirectory()

    /// Every field set, so the encoded keys show which fields the model covers.
    func fullModels(_ store: Store) throws -> [any EntityModel & Hashable] {
        let date = CalendarDate("2021-11-16")!
        let photoPath = dir.path("现场.jpg")
        try Data([0xFF, 0xD8, 0xFF, 0xE0, 1, 2, 3]).write(to: URL(fileURLWithPath: photoPath))
        let photo = try store.importFile(at: photoPath)
        let round = try store.insert(
            InspectionRound(
                title: "区委第一巡察组巡察区民政局", team: "区委第一巡察组", unit: "区民政局",
                startedOn: CalendarDate("2021-08-16"), endedOn: CalendarDate("2021-09-30"), feedbackOn: date))
        let site = try store.insert(
            Site(
                name: "城厢区公建民营敬老院", kind: .elderlyHome, town: "霞林街道", village: "荔城社区",
                operator: .publicBuiltPrivateRun, starRating: 3, bedsTotal: 559, nursingBeds: 441, meetsSixHaves: true,
                observedOn: date, illegalGravesFound: 2, tags: ["公建民营", "护理"]))
        let visit = try store.insert(
            Visit(
                site: site.id, round: round.id, visitedOn: date, inspectors: ["张伟", "王芳"], summary: "发现问题14个，其中共性问题8个",
                problemsFound: 14, penaltyYuan: 4000, recoveredYuan: 25131.5, photos: [photo]))
        let finding = try store.insert(
            Finding(
                round: round.id, visit: visit.id, site: site.id, aspect: .misconductNearPeople, category: "养老服务",
                title: "违约金未收缴", description: "公建民营养老机构违约金4000元未按合同收缴", status: .inProgress, reopenCount: 1,
                deadline: CalendarDate("2022-06-30"), responsibleLeader: "李娜", responsibleUnit: "养老服务科",
                responsiblePerson: "刘洋", results: "已收缴", nextSteps: "建立长效机制", rectifiedOn: date, longTerm: true,
                evidence: [photo]))
        let measure = try store.insert(
            Measure(
                finding: finding.id, description: "督促运营方缴纳违约金", responsibleLeader: "李娜", responsibleUnit: "养老服务科",
                responsiblePerson: "刘洋", deadline: date, status: .completed, longTerm: true, evidence: [photo]))
        let action = try store.insert(
            AccountabilityAction(finding: finding.id, person: "陈静", kind: .admonishment, decidedOn: date))
        let note = try store.insert(
            ProgressNote(
                finding: finding.id, text: "违约金已全额缴纳", author: "王芳",
                writtenAt: Date(timeIntervalSince1970: 1_637_055_000.123)))
        return [round, site, visit, finding, measure, action, note]
    }

    @Test("each model covers exactly its entity's fields, and reads back equal")
    func modelsMatchSchema() throws {
        let store = try makeStore(dir)
        let models = try fullModels(store)
        #expect(Set(models.map { type(of: $0).entityName }) == Set(store.schema.entities.map(\.name)))
        for model in models {
            let entity = try #require(store.schema.entity(type(of: model).entityName))
            let record = try #require(try store.record(entity.name, id: model.id))
            for (field, value) in zip(entity.fields, record.values) {
                #expect(!value.isNull, "\(entity.name).\(field.name) is not covered by the model")
            }
            #expect(try roundTrips(model, store))
        }
    }

    func roundTrips<M: EntityModel & Hashable>(_ model: M, _ store: Store) throws -> Bool {
        try store.fetch(M.self, id: model.id) == model
    }

    @Test("save writes only the fields that changed, as one change")
    func saveWritesChanges() throws {
        let store = try makeStore(dir)
        var finding = try store.insert(Finding(title: "消防通道堆放杂物", deadline: CalendarDate("2021-12-31")))
        finding.status = .completed
        finding.deadline = nil
        finding.reopenCount = 2
        try store.save(finding)
        let last = try #require(try store.pendingChanges().last)
        #expect(last.operation == .update)
        #expect(
            last.fields == [
                FieldChange(field: "status", kind: .set("completed"), epoch: 2),
                FieldChange(field: "reopen_count", kind: .add(2)),
                FieldChange(field: "deadline", kind: .set(.null)),
            ])
        #expect(try store.fetch(Finding.self, id: finding.id) == finding)
        let before = try store.pendingCount()
        try store.save(finding)
        #expect(try store.pendingCount() == before, "saving an unchanged model logs nothing")
        let open = try store.fetch(Finding.self) { $0.filter("status", .equal, "completed") }
        #expect(open.map(\.id) == [finding.id])
    }
}
