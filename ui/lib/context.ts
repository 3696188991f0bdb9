import { createContext } from "preact";
import { useContext, useEffect, useRef, useState } from "preact/hooks";
import type { ConnectionState, LiveEvent, LiveSocket, Target } from "./live";

export const LiveContext = createContext<LiveSocket | null>(null);

export const useLive = () => useContext(LiveContext)!;

export function useConnectionState(): ConnectionState {
  const live = useLive();
  const [state, setState] = useState<ConnectionState>(live.state);
  useEffect(() => live.onState(setState), [live]);
  return state;
}

/**
 * Subscribes while the component is mounted. `load` runs once the subscription is in place (and
 * again when a resume is not possible), so no event between the load and the subscription is lost;
 * events that arrive while a load is under way are handed over after it, in order. If the socket
 * cannot connect, the page still loads once after `fallbackMs` and says it is not live.
 */
export function useLiveTarget(
  target: Target | null,
  handlers: { load: () => Promise<void>; onEvents: (events: LiveEvent[]) => void },
  deps: unknown[],
  fallbackMs = 3000,
) {
  const live = useLive();
  const ref = useRef(handlers);
  ref.current = handlers;
  useEffect(() => {
    if (!target) return;
    let loading = false;
    let loadedOnce = false;
    let held: LiveEvent[] = [];
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
    const load = async () => {
      loading = true;
      try {
        await ref.current.load();
      } finally {
        loading = false;
        loadedOnce = true;
        const after = held;
        held = [];
        if (after.length) push(after);
      }
    };
    const timer = setTimeout(() => {
      if (!loadedOnce && !loading) void load();
    }, fallbackMs);
    const off = live.subscribe(target, {
      onEvent: (e) => (loading || !loadedOnce ? held.push(e) : push([e])),
      onSubscribed: (resumed) => {
        if (!resumed || !loadedOnce) void load();
      },
    });
    return () => {
      cancelled = true;
      clearTimeout(timer);
      if (frame) cancelAnimationFrame(frame);
      off();
    };
  }, deps);
}
