"""Domain applications: clinical decision support and financial compliance."""
from course_lib.domains.compliance import ComplianceRerankingSystem
from course_lib.domains.medical import MedicalRerankingSystem

__all__ = ["MedicalRerankingSystem", "ComplianceRerankingSystem"]
