import FieldbookCore
import FieldbookJSON
import FieldbookSync
import Hummingbird
import NIOCore
import NIOHTTPTypes

/// Gives the bare `400` that Hummingbird sends for a request NIO cannot parse (a malformed request
/// line, headers over 80 KiB, a bad chunk) the JSON error body every refusal has (docs/protocol.md).
///
/// Hummingbird writes that answer itself, below the router, as a head with `Connection: close` and
/// `Content-Length: 0`; every answer of the server's own has a body. So such a head is the parse error's,
/// and this handler adds the body to it on its way out.
final class ParseErrorBody: ChannelOutboundHandler, RemovableChannelHandler {
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    static let body: ByteBuffer = {
        var bytes: [UInt8] = []
        WireError(.badMessage, "the request line or headers could not be read (malformed, or headers over 80 KiB)").json
            .write(to: &bytes)
        return ByteBuffer(bytes: bytes)
    }()

    private var rewriting = false

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        switch unwrapOutboundIn(data) {
        case .head(var head)
        where head.status == .badRequest && head.headerFields[.contentLength] == "0"
            && head.headerFields[.connection] == "close":
            rewriting = true
            head.headerFields[.contentLength] = "\(Self.body.readableBytes)"
            head.headerFields[.contentType] = "application/json; charset=utf-8"
            context.write(wrapOutboundOut(.head(head)), promise: promise)
        case .end(let trailers) where rewriting:
            rewriting = false
            context.write(wrapOutboundOut(.body(Self.body)), promise: nil)
            context.write(wrapOutboundOut(.end(trailers)), promise: promise)
        default:
            context.write(data, promise: promise)
        }
    }
}
