-- Argo CD health of a hubbroker.io/v1alpha1 Hub, from the operator's Ready condition.
-- Healthy: reconciled and the hub's pods ready. Progressing: the operator has not caught up
-- with the latest spec, pods are starting, or the Hub waits for its Tenants to go before it
-- is deleted. Degraded: anything the operator reports as a fault (missing Secret, database
-- unreachable, failed migration). Uses only Lua's base library, as argocd-cm scripts must.
local hs = { status = "Progressing", message = "Waiting for the operator" }
if obj.metadata.deletionTimestamp ~= nil then
  hs.message = "Being deleted"
  return hs
end
if obj.status == nil then
  return hs
end
local generation = obj.metadata.generation
local observed = obj.status.observedGeneration
if generation ~= nil and (observed == nil or observed < generation) then
  hs.message = "Waiting for the operator to reconcile generation " .. generation
  return hs
end
local ready = nil
if obj.status.conditions ~= nil then
  for _, c in ipairs(obj.status.conditions) do
    if c.type == "Ready" then
      ready = c
    end
  end
end
if ready == nil then
  return hs
end
local message = ready.message or ""
if ready.status == "True" then
  return { status = "Healthy", message = message }
end
-- Reasons that resolve by themselves (operator/api/reasons.ts TRANSIENT_REASONS).
local transient = { Progressing = true, Deleting = true, TenantsRemaining = true, TenantNotReady = true }
if ready.status == "False" and not transient[ready.reason] then
  return { status = "Degraded", message = (ready.reason or "NotReady") .. ": " .. message }
end
hs.message = message
return hs
