export async function benchEvents() {}
