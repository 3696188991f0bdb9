import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import { SnapshotGate, type ConnectionState, type LiveEvent, type LiveSocket, type Target } from "./live";

export const LiveContext = createContext<LiveSocket | null>(null);

export const useLive = () => useContext(LiveContext)!;

export function useConnectionState(): ConnectionState {
  const live = useLive();
  const [state, setState] = useState<ConnectionState>(live.state);
  useEffect(() => live.onState(setState), [live]);
  return state;
}

/** What a page may ask of its live target: load afresh, or run an action whose answer replaces the page's data. */
export interface LiveTargetControl {
  /** Loads again (after any load under way, never beside it), events held meanwhile and handed over after. */
  reload(): Promise<void>;
  /** Runs `task` between loads, events held meanwhile and handed over after it. */
  exclusive<T>(task: () => Promise<T>): Promise<T>;
}

/**
 * Subscribes while the component is mounted. `load` runs once the subscription is in place (and
 * again when a resume is not possible), so no event between the load and the subscription is lost;
 * events that arrive while a load is under way are handed over after it, in order. Loads never
 * overlap (see SnapshotGate): an older answer can never land after a newer one. If the socket
 * cannot connect, the page still loads once after `fallbackMs` and says it is not live.
 */
export function useLiveTarget(
  target: Target | null,
  handlers: { load: () => Promise<void>; onEvents: (events: LiveEvent[]) => void },
  deps: unknown[],
  fallbackMs = 3000,
): LiveTargetControl {
  const live = useLive();
  const ref = useRef(handlers);
  ref.current = handlers;
  const gate = useRef<SnapshotGate | null>(null);
  const control = useRef<LiveTargetControl>({
    reload: () => gate.current?.requestLoad() ?? Promise.resolve(),
    exclusive: (task) => (gate.current ? gate.current.exclusive(task) : task()),
  });
  useEffect(() => {
    if (!target) return;
    let queued: LiveEvent[] = [];
    let frame = 0;
    let cancelled = false;
    // Events are applied at most once a frame: a 1,000-job flow may send hundreds a second.
    const flush = () => {
      frame = 0;
      if (cancelled || queued.length === 0) return;
      const batch = queued;
      queued = [];
      ref.current.onEvents(batch);
    };
    const push = (events: LiveEvent[]) => {
      queued.push(...events);
      if (!frame) frame = requestAnimationFrame(flush);
    };
    // Events already queued for the next frame when a snapshot lands are older than it: applied
    // after it, in order, with those held during it, each job still ends with its newest state.
    const g = new SnapshotGate(() => ref.current.load(), push);
    gate.current = g;
    let loadedOnce = false;
    const load = () => g.requestLoad().then(() => void (loadedOnce = true));
    const timer = setTimeout(() => {
      if (!loadedOnce && !g.busy) void load();
    }, fallbackMs);
    const off = live.subscribe(target, {
      onEvent: (e) => g.event(e),
      onSubscribed: (resumed) => {
        if (!resumed || !loadedOnce) void load();
      },
    });
    return () => {
      cancelled = true;
      g.stop();
      if (gate.current === g) gate.current = null;
      clearTimeout(timer);
      if (frame) cancelAnimationFrame(frame);
      off();
    };
  }, deps);
  return control.current;
}
