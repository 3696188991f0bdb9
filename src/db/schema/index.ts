export * from "./users";
export * from "./flows";
export * from "./jobs";
export * from "./events";
export * from "./webhooks";
export * from "./tallies";
export * from "./replies";
export * from "./registry";
