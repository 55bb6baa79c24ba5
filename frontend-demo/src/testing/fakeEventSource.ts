/**
 * A stand-in for the browser's EventSource in unit tests: records every stream the code opens
 * and lets a test play the server (named events with JSON data) or the network (a bare error).
 */
export class FakeEventSource extends EventTarget {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSED = 2;

  /** Every instance created since the last `reset()`, oldest first. */
  static instances: FakeEventSource[] = [];

  static reset(): void {
    FakeEventSource.instances = [];
  }

  /** The most recently opened stream; fails the test if none was opened. */
  static latest(): FakeEventSource {
    const last = FakeEventSource.instances[FakeEventSource.instances.length - 1];
    if (!last) throw new Error('no EventSource was opened');
    return last;
  }

  readonly url: string;
  readyState = FakeEventSource.CONNECTING;
  closeCalls = 0;

  constructor(url: string | URL) {
    super();
    this.url = String(url);
    FakeEventSource.instances.push(this);
  }

  close(): void {
    this.closeCalls += 1;
    this.readyState = FakeEventSource.CLOSED;
  }

  /** The server answered 200 `text/event-stream`. */
  serverOpens(): void {
    this.readyState = FakeEventSource.OPEN;
    this.dispatchEvent(new Event('open'));
  }

  /** The server wrote `event: <type>` with `data: <JSON of data>` (raw strings are sent as is). */
  serverSends(type: string, data: unknown): void {
    if (this.readyState === FakeEventSource.CLOSED) return;
    const text = typeof data === 'string' ? data : JSON.stringify(data);
    this.dispatchEvent(new MessageEvent(type, { data: text }));
  }

  /** The connection failed or ended: EventSource's own `error`, which has no `data`. */
  transportFails(): void {
    if (this.readyState === FakeEventSource.CLOSED) return;
    // A real EventSource would now be CONNECTING again, about to retry on its own.
    this.readyState = FakeEventSource.CONNECTING;
    this.dispatchEvent(new Event('error'));
  }
}
