// RenderPlan: the plan as people read it, in Terraform's shape.

#include <cmath>
#include <cstdio>
#include <sstream>

#include "planner/plan.h"

namespace planner {
namespace {

using nlohmann::json;

struct Style {
  bool color;
  std::string Paint(const char* code, const std::string& text) const {
    return color ? std::string("\x1b[") + code + "m" + text + "\x1b[0m" : text;
  }
  std::string Green(const std::string& text) const { return Paint("32", text); }
  std::string Yellow(const std::string& text) const { return Paint("33", text); }
  std::string Red(const std::string& text) const { return Paint("31", text); }
  std::string Bold(const std::string& text) const { return Paint("1", text); }
};

std::string Shown(const json& value, bool sensitive) {
  if (value.is_null()) return "null";
  if (sensitive) return "(sensitive)";
  return value.dump();
}

// "will be created", the sign before the resource, and its colour.
struct Verb {
  const char* phrase;
  const char* sign;
  const char* color;
};

Verb VerbOf(Action action) {
  switch (action) {
    case Action::kCreate:
      return {"will be created", "  +", "32"};
    case Action::kUpdate:
      return {"will be updated in place", "  ~", "33"};
    case Action::kReplace:
      return {"must be replaced", "-/+", "31"};
    case Action::kDelete:
      return {"will be destroyed", "  -", "31"};
    case Action::kNoOp:
      break;
  }
  return {"is unchanged", "   ", "0"};
}

void RenderChange(const ResourceChange& change, const Style& style, std::ostream& out,
                  const char* phrase) {
  Verb verb = VerbOf(change.action);
  out << "  " << style.Bold("# " + change.Address() + " " + (phrase ? phrase : verb.phrase))
      << "\n";
  std::string title = change.name.empty() ? change.type : change.type + " \"" + change.name + "\"";
  out << style.Paint(verb.color, verb.sign) << " " << title;
  if (change.action == Action::kDelete && !phrase) {
    out << "\n\n";
    return;
  }
  out << " {\n";
  std::size_t width = 0;
  for (const AttributeChange& attribute : change.changes)
    width = std::max(width, attribute.attribute.size());
  for (const AttributeChange& attribute : change.changes) {
    std::string name = attribute.attribute + std::string(width - attribute.attribute.size(), ' ');
    if (attribute.before.is_null()) {
      out << "      " << style.Green("+") << " " << name << " = "
          << Shown(attribute.after, attribute.sensitive) << "\n";
    } else if (attribute.after.is_null()) {
      out << "      " << style.Red("-") << " " << name << " = "
          << Shown(attribute.before, attribute.sensitive) << "\n";
    } else {
      out << "      " << style.Yellow("~") << " " << name << " = "
          << Shown(attribute.before, attribute.sensitive) << " -> "
          << Shown(attribute.after, attribute.sensitive);
      if (attribute.forces_replacement) out << style.Red(" # forces replacement");
      out << "\n";
    }
  }
  out << "    }\n\n";
}

void RenderPlacement(const Plan& plan, std::ostream& out) {
  if (plan.placement.functions.empty()) return;
  out << "Placement:\n";
  std::size_t width = 0;
  for (const auto& [function, replicas] : plan.placement.functions)
    width = std::max(width, function.size());
  for (const auto& [function, replicas] : plan.placement.functions) {
    out << "  " << function << std::string(width - function.size(), ' ');
    bool first = true;
    for (const Replica& replica : replicas) {
      out << (first ? "  " : ", ") << replica.agent;
      if (!replica.gpu_type.empty()) out << " " << replica.gpu_type << ":" << replica.gpu_count;
      out << " (min " << replica.min_containers << ", max " << replica.max_containers
          << (replica.owns_schedule ? ", schedule" : "") << ")";
      first = false;
    }
    out << "\n";
  }
  out << "\n";
}

// "$10.00 a day, $200.00 a month"; an agent's share of a few cents to the
// hundredth of a cent, as it enforces it.
std::string Caps(const spec::Budget& budget) {
  std::string caps;
  if (budget.daily_usd) caps = core::FormatUsdFine(*budget.daily_usd) + " a day";
  if (budget.monthly_usd)
    caps += (caps.empty() ? "" : ", ") + core::FormatUsdFine(*budget.monthly_usd) + " a month";
  return caps;
}

// A share as a percentage: whole when it is one, else to a tenth ("99.8%"),
// so that a share just short of the whole never reads as all of it.
std::string Percent(double share) {
  double tenths = std::floor(share * 1000) / 10;
  char text[16];
  std::snprintf(text, sizeof text, tenths == std::floor(tenths) ? "%.0f%%" : "%.1f%%", tenths);
  return text;
}

// The spec's budget beside the estimate, and each agent's share of it when
// there are several (cost_estimate.h, SplitBudget).
void RenderBudget(const Plan& plan, std::ostream& out) {
  if (!plan.budget.is_object() || plan.cost.budget.empty()) return;
  spec::Budget whole;
  if (plan.budget.contains("daily_usd")) whole.daily_usd = plan.budget["daily_usd"].get<double>();
  if (plan.budget.contains("monthly_usd"))
    whole.monthly_usd = plan.budget["monthly_usd"].get<double>();
  bool stop = plan.budget.value("on_exceed", "stop") == "stop";
  out << "  budget: " << Caps(whole) << (stop ? ", stopped at a cap" : ", an alert at a cap")
      << " (UTC days and months, enforced by the agents from their usage ledgers)\n";
  if (plan.cost.budget.size() == 1) return;
  std::size_t width = 0;
  for (const AgentBudget& part : plan.cost.budget) width = std::max(width, part.agent.size());
  for (const AgentBudget& part : plan.cost.budget) {
    out << "    " << part.agent << std::string(width - part.agent.size(), ' ') << "  "
        << Percent(part.share) << "  " << Caps(part.budget) << "\n";
  }
}

void RenderCost(const Plan& plan, const Style& style, std::ostream& out) {
  if (plan.cost.functions.empty()) return;
  out << "Cost estimate (USD, 30-day month):\n";
  std::size_t width = 0;
  for (const FunctionCost& cost : plan.cost.functions)
    width = std::max(width, cost.function.size());
  for (const FunctionCost& cost : plan.cost.functions) {
    out << "  " << cost.function << std::string(width - cost.function.size(), ' ') << "  "
        << core::FormatUsd(cost.container_per_hour) << "/hour a container, always on "
        << core::FormatUsd(cost.always_on_monthly) << ", at max_containers "
        << core::FormatUsd(cost.max_monthly) << "\n";
  }
  out << "  total: always on " << core::FormatUsd(plan.cost.always_on_monthly)
      << " a month, at most " << core::FormatUsd(plan.cost.max_monthly) << " a month\n";
  RenderBudget(plan, out);
  for (const std::string& warning : plan.cost.warnings)
    out << style.Bold(style.Yellow("  Warning: " + warning)) << "\n";
  out << "\n";
}

}  // namespace

std::string RenderPlan(const Plan& plan, bool color) {
  Style style{color};
  std::ostringstream out;
  if (!plan.drift.empty()) {
    out << style.Bold("Objects have changed outside gantry since the last apply:") << "\n\n";
    for (const ResourceChange& change : plan.drift) {
      const char* phrase = change.action == Action::kCreate   ? "appeared on an agent"
                           : change.action == Action::kDelete ? "is gone from its agent"
                                                              : "was changed on an agent";
      RenderChange(change, style, out, phrase);
    }
  }
  bool any = false;
  for (const ResourceChange& change : plan.resources) {
    if (change.action == Action::kNoOp) continue;
    if (!any) {
      out << "gantry will perform the following actions"
          << (plan.destroy ? " to destroy app " + plan.app : "") << ":\n\n";
      any = true;
    }
    RenderChange(change, style, out, nullptr);
  }
  if (!plan.destroy) {
    RenderPlacement(plan, out);
    RenderCost(plan, style, out);
  }
  Plan::Summary summary = plan.Count();
  if (!plan.HasChanges()) {
    out << style.Green("No changes.") << " App " << plan.app
        << (plan.destroy ? " runs nowhere.\n" : " matches the spec.\n");
  } else {
    out << style.Bold("Plan:") << " " << summary.add << " to add, " << summary.change
        << " to change, " << summary.destroy << " to destroy.\n";
  }
  return out.str();
}

}  // namespace planner
