import Foundation
import Logging
@testable import Store
import Synchronization
import TestSupport
import Testing

@Suite("Local store specifics", .timeLimit(.minutes(5)))
struct LocalStoreTests {
    func directory() -> String {
        TestRun.temporaryPath("local")
    }

    @Test("survives a restart with nothing lost: keys, revisions, leases; a torn last line is skipped")
    func restart() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var lease: LeaseID
        var revision: Int64
        do {
            let store = try LocalStore(directory: dir, logger: Logger(label: "t"))
            try store.put("a", Array("1".utf8))
            try store.put("b", Array("2".utf8))
            try store.delete("a")
            lease = try store.grantLease(ttl: 30)
            try store.put("c", Array("3".utf8), lease: lease)
            revision = try store.list(prefix: "").revision
        }
        // A crash in the middle of a write leaves half a line.
        let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/store.log"))
        try handle.seekToEnd()
        try handle.write(contentsOf: Data("{\"op\":\"put\",\"key\":\"hal".utf8))
        try handle.close()
        let store = try LocalStore(directory: dir, logger: Logger(label: "t"))
        #expect(try store.get("a") == nil)
        #expect(try store.get("b")?.text == "2")
        #expect(try store.get("c")?.lease == lease)
        #expect(try store.list(prefix: "").revision == revision)
        #expect(try store.keepAlive(lease))
        #expect(try store.put("d", []) == revision + 1)
        // Watching from before the restart: history is gone, so it says re-read.
        let failure = Mutex<StoreError?>(nil)
        let watch = try store.watch(prefix: "", from: 1, events: { _ in }, failed: { e in failure.withLock { $0 = e } })
        for _ in 0..<100 where failure.withLock({ $0 }) == nil { usleep(10_000) }
        watch.cancel()
        #expect(failure.withLock { $0 } == .compacted(revision: revision))
    }

    @Test("a log that cannot be read is refused in one line and left as it is, never taken for an empty store")
    func unreadableLog() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        do {
            let store = try LocalStore(directory: dir, logger: Logger(label: "t"))
            try store.put("dnsd/v1/networks/vnet", Array("{}".utf8))
        }
        // Not UTF-8 any more (a disk error, a bad copy): the whole log is unreadable as text.
        let path = dir + "/store.log"
        var bytes = try #require(FileManager.default.contents(atPath: path))
        bytes.insert(contentsOf: [0xFF, 0xFE, 0x0A], at: 0)
        try bytes.write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try LocalStore(directory: dir, logger: Logger(label: "t"))
        } throws: { error in
            "\(error)".contains("cannot read") && !"\(error)".contains("\n")
        }
        #expect(FileManager.default.contents(atPath: path) == bytes, "the log is left as it was")
        // A damaged line that is not the last one (a zeroed block: valid UTF-8, not JSON).
        var damaged = try #require(FileManager.default.contents(atPath: path)).dropFirst(3)
        damaged = Data([0, 0, 0, 0, 0x0A]) + damaged
        try damaged.write(to: URL(fileURLWithPath: path))
        #expect {
            _ = try LocalStore(directory: dir, logger: Logger(label: "t"))
        } throws: { error in
            "\(error)".contains("cannot read line 1")
        }
        #expect(FileManager.default.contents(atPath: path) == damaged, "the log is left as it was")
    }

    @Test("a key under a lease that is not kept alive vanishes after its TTL, and a watch sees it go")
    func leaseExpiry() throws {
        let dir = directory()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let store = try LocalStore(directory: dir, logger: Logger(label: "t"))
        let lease = try store.grantLease(ttl: 1)
        try store.put("dnsd/v1/endpoints/vnet/e1", Array("x".utf8), lease: lease)
        let deleted = Mutex(false)
        let watch = try store.watch(prefix: "dnsd/v1/endpoints/", from: try store.list(prefix: "").revision + 1,
                                    events: { batch in if batch.contains(where: { $0.kind == .delete }) { deleted.withLock { $0 = true } } },
                                    failed: { _ in })
        defer { watch.cancel() }
        for _ in 0..<300 where !deleted.withLock({ $0 }) { usleep(10_000) }
        #expect(deleted.withLock { $0 })
        #expect(try store.get("dnsd/v1/endpoints/vnet/e1") == nil)
        #expect(try !store.keepAlive(lease))
        #expect(throws: StoreError.self) { try store.put("k", [], lease: lease) }
    }
}
