import CCurl
import Foundation

/// A small libcurl client: one easy handle, so the connection is kept alive between requests
/// (an etcdctl process per call costs 11-15 ms; a kept-alive POST well under one).
///
/// An `interruptible` client (a watch's: a stream that stays silent, a blocking query) runs its
/// transfers through curl's multi interface, waiting in `curl_multi_poll`, so `interrupt()`
/// from another thread ends the transfer at once (`curl_multi_wakeup`) instead of whenever the
/// server next sends something.
final class HTTPClient: @unchecked Sendable {
    /// The easy handle; nil when libcurl could not be loaded (every request then fails).
    private let easy: UnsafeMutableRawPointer?
    private let lock = NSLock()
    private var headers: UnsafeMutablePointer<curl_slist>?
    let timeoutMilliseconds: Int
    private let interruptible: Bool
    /// Guards `transfer` and `interrupted` (taken by `interrupt()` while a request runs).
    private let wakeLock = NSLock()
    private var transfer: UnsafeMutableRawPointer?
    private var interrupted = false

    /// libcurl, loaded on first use (see CCurl.h): nil when it loaded, else why not.
    private static let loadFailure: String? = {
        guard dnsd_curl_load() == 0 else { return String(cString: dnsd_curl_load_error()) }
        _ = dnsd_curl_global_init(Int(CURL_GLOBAL_DEFAULT))
        return nil
    }()

    init(timeoutMilliseconds: Int, interruptible: Bool = false) {
        // A machine without libcurl.so.4 cannot speak to etcd or Consul at all: every request
        // says so (`request` throws), nothing crashes.
        easy = Self.loadFailure == nil ? dnsd_curl_easy_init() : nil
        self.timeoutMilliseconds = timeoutMilliseconds
        self.interruptible = interruptible
        headers = easy == nil ? nil : dnsd_curl_slist_append(nil, "Content-Type: application/json")
    }

    /// Ends the running transfer of an interruptible client, and every later one.
    func interrupt() {
        wakeLock.withLock {
            interrupted = true
            if let transfer { dnsd_curl_multi_wakeup(transfer) }
        }
    }

    /// One transfer through a multi handle, polled until done or interrupted.
    private func performInterruptibly(_ handle: UnsafeMutableRawPointer) -> CURLcode {
        guard let multi = dnsd_curl_multi_init() else { return CURLE_OUT_OF_MEMORY }
        dnsd_curl_multi_add_handle(multi, handle)
        wakeLock.withLock { transfer = multi }
        defer {
            wakeLock.withLock { transfer = nil }
            dnsd_curl_multi_remove_handle(multi, handle)
            dnsd_curl_multi_cleanup(multi)
        }
        var running: Int32 = 1
        while running > 0 {
            if wakeLock.withLock({ interrupted }) { return CURLE_ABORTED_BY_CALLBACK }
            guard dnsd_curl_multi_perform(multi, &running) == CURLM_OK else { return CURLE_RECV_ERROR }
            if running > 0, dnsd_curl_multi_poll(multi, nil, 0, 1000, nil) != CURLM_OK { return CURLE_RECV_ERROR }
        }
        var left: Int32 = 0
        while let message = dnsd_curl_multi_info_read(multi, &left) {
            if message.pointee.msg == CURLMSG_DONE { return message.pointee.data.result }
        }
        return CURLE_OK
    }

    deinit {
        guard let easy else { return }
        dnsd_curl_easy_cleanup(easy)
        dnsd_curl_slist_free_all(headers)
    }

    /// POSTs `body` to `url`; returns the status and body. `stream` (for watches) receives
    /// each chunk as it arrives and may return false to stop the transfer.
    func post(_ url: String, body: Data, timeoutMilliseconds: Int? = nil,
              stream: ((Data) -> Bool)? = nil) throws -> (status: Int, body: Data) {
        let reply = try request("POST", url, body: body, timeoutMilliseconds: timeoutMilliseconds, stream: stream)
        return (reply.status, reply.body)
    }

    /// Any method; `body` nil sends none. Response headers come back lower-cased.
    func request(_ method: String, _ url: String, body: Data?, timeoutMilliseconds: Int? = nil,
                 stream: ((Data) -> Bool)? = nil) throws -> (status: Int, body: Data, headers: [String: String]) {
        try lock.withLock {
            guard let handle = easy else {
                throw StoreError.unavailable(operation: url, detail: (Self.loadFailure ?? "libcurl could not start") + " (install libcurl4)")
            }
            dnsd_curl_easy_reset(handle)
            final class Sink {
                var data = Data()
                var headers: [String: String] = [:]
                var stream: ((Data) -> Bool)?
            }
            let sink = Sink()
            sink.stream = stream
            let context = Unmanaged.passUnretained(sink).toOpaque()
            dnsd_curl_set_string(handle, CURLOPT_URL, url)
            dnsd_curl_set_slist(handle, CURLOPT_HTTPHEADER, headers)
            dnsd_curl_set_long(handle, CURLOPT_NOSIGNAL, 1)
            // A transfer without an overall timeout (a watch) still gives up connecting after
            // 2 s (curl's own default is 300 s: a member that vanished would hold it that long).
            let overall = timeoutMilliseconds ?? self.timeoutMilliseconds
            dnsd_curl_set_long(handle, CURLOPT_CONNECTTIMEOUT_MS, overall > 0 ? min(overall, 2000) : 2000)
            dnsd_curl_set_long(handle, CURLOPT_TIMEOUT_MS, timeoutMilliseconds ?? self.timeoutMilliseconds)
            dnsd_curl_set_long(handle, CURLOPT_TCP_NODELAY, 1)
            dnsd_curl_set_pointer(handle, CURLOPT_WRITEDATA, context)
            dnsd_curl_set_write(handle) { data, size, count, context in
                let sink = Unmanaged<AnyObject>.fromOpaque(context!).takeUnretainedValue() as! Sink
                let chunk = Data(bytes: data!, count: size * count)
                if let stream = sink.stream { return stream(chunk) ? size * count : 0 }

                sink.data.append(chunk)
                return size * count
            }
            dnsd_curl_set_header(handle, { data, size, count, context in
                let sink = Unmanaged<AnyObject>.fromOpaque(context!).takeUnretainedValue() as! Sink
                let line = String(decoding: UnsafeRawBufferPointer(start: data, count: size * count), as: UTF8.self)
                if let colon = line.firstIndex(of: ":") {
                    sink.headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespacesAndNewlines)
                }
                return size * count
            }, context)
            if method != "POST" && method != "GET" { dnsd_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, method) }
            let payload = body ?? Data()
            let result: CURLcode = payload.withUnsafeBytes { raw in
                if body != nil || method == "POST" {
                    dnsd_curl_set_long(handle, CURLOPT_POSTFIELDSIZE, raw.count)
                    dnsd_curl_set_pointer(handle, CURLOPT_POSTFIELDS, UnsafeMutableRawPointer(mutating: raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!))
                } else {
                    dnsd_curl_set_long(handle, CURLOPT_HTTPGET, 1)
                    if method != "GET" { dnsd_curl_set_string(handle, CURLOPT_CUSTOMREQUEST, method) }
                }
                return interruptible ? performInterruptibly(handle) : dnsd_curl_easy_perform(handle)
            }
            guard result == CURLE_OK || (stream != nil && (result == CURLE_WRITE_ERROR || result == CURLE_ABORTED_BY_CALLBACK)) else {
                throw StoreError.unavailable(operation: url, detail: String(cString: dnsd_curl_easy_strerror(result)))
            }
            var status = 0
            dnsd_curl_response_code(handle, &status)
            return (status, sink.data, sink.headers)
        }
    }
}

/// Kept-alive clients for requests made from many threads at once: each request borrows an idle
/// client (its connection already open) or makes one, and gives it back, so concurrent commands
/// never queue behind one connection, and a request stuck on a member that does not answer
/// holds only its own. At most `idleLimit` idle clients are kept.
final class HTTPClientPool: @unchecked Sendable {
    private let timeoutMilliseconds: Int
    private let idleLimit: Int
    private let lock = NSLock()
    private var idle: [HTTPClient] = []

    init(timeoutMilliseconds: Int, idleLimit: Int = 16) {
        self.timeoutMilliseconds = timeoutMilliseconds
        self.idleLimit = idleLimit
    }

    func request(_ method: String, _ url: String, body: Data?, timeoutMilliseconds: Int? = nil) throws
        -> (status: Int, body: Data, headers: [String: String]) {
        let client = lock.withLock { idle.popLast() } ?? HTTPClient(timeoutMilliseconds: self.timeoutMilliseconds)
        defer { lock.withLock { if idle.count < idleLimit { idle.append(client) } } }
        return try client.request(method, url, body: body, timeoutMilliseconds: timeoutMilliseconds)
    }

    func post(_ url: String, body: Data) throws -> (status: Int, body: Data) {
        let reply = try request("POST", url, body: body)
        return (reply.status, reply.body)
    }
}
