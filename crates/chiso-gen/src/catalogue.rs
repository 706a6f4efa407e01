//! The departments and the commune-level procedures of the sample city.
//!
//! Names are the real titles of common commune-level procedures (thủ tục cấp
//! xã); codes are synthetic but keep the national `1.00xxxx`/`2.00xxxx` form.
//! Weights shape demand: certification of copies and civil-status
//! registrations dominate a commune desk, land and construction are rarer.

/// A city department (sở/ngành) that owns procedures.
#[derive(Debug, Clone, Copy)]
pub struct Department {
    pub code: &'static str,
    pub name: &'static str,
    pub name_en: &'static str,
}

pub const DEPARTMENTS: [Department; 17] = [
    Department {
        code: "STP",
        name: "Sở Tư pháp",
        name_en: "Department of Justice",
    },
    Department {
        code: "STC",
        name: "Sở Tài chính",
        name_en: "Department of Finance",
    },
    Department {
        code: "SNV",
        name: "Sở Nội vụ",
        name_en: "Department of Home Affairs",
    },
    Department {
        code: "SNNMT",
        name: "Sở Nông nghiệp và Môi trường",
        name_en: "Department of Agriculture and Environment",
    },
    Department {
        code: "SXD",
        name: "Sở Xây dựng",
        name_en: "Department of Construction",
    },
    Department {
        code: "SYT",
        name: "Sở Y tế",
        name_en: "Department of Health",
    },
    Department {
        code: "SGDDT",
        name: "Sở Giáo dục và Đào tạo",
        name_en: "Department of Education and Training",
    },
    Department {
        code: "SVHTTDL",
        name: "Sở Văn hóa, Thể thao và Du lịch",
        name_en: "Department of Culture, Sports and Tourism",
    },
    Department {
        code: "SCT",
        name: "Sở Công Thương",
        name_en: "Department of Industry and Trade",
    },
    Department {
        code: "SKHCN",
        name: "Sở Khoa học và Công nghệ",
        name_en: "Department of Science and Technology",
    },
    Department {
        code: "SDTTG",
        name: "Sở Dân tộc và Tôn giáo",
        name_en: "Department of Ethnic and Religious Affairs",
    },
    Department {
        code: "TTTP",
        name: "Thanh tra thành phố",
        name_en: "City Inspectorate",
    },
    Department {
        code: "VPUB",
        name: "Văn phòng Ủy ban nhân dân thành phố",
        name_en: "Office of the City People's Committee",
    },
    Department {
        code: "CATP",
        name: "Công an thành phố",
        name_en: "City Police",
    },
    Department {
        code: "SNG",
        name: "Sở Ngoại vụ",
        name_en: "Department of Foreign Affairs",
    },
    Department {
        code: "BQLKCN",
        name: "Ban Quản lý các khu chế xuất và công nghiệp",
        name_en: "Export Processing and Industrial Zones Authority",
    },
    Department {
        code: "TTPVHCC",
        name: "Trung tâm Phục vụ hành chính công",
        name_en: "Public Administration Service Centre",
    },
];

/// A procedure handled at the commune one-stop desk.
#[derive(Debug, Clone, Copy)]
pub struct Procedure {
    pub code: &'static str,
    pub name: &'static str,
    pub department: &'static str,
    /// Statutory time in working days; `None`: the procedure has no due date.
    pub working_days: Option<u32>,
    /// Carries a fee or another financial obligation.
    pub fee: bool,
    /// Offered as a full-process (toàn trình) online service.
    pub full_online: bool,
    /// Relative demand.
    pub weight: f64,
}

macro_rules! procedures {
    ($($code:literal, $dept:literal, $days:expr, $fee:literal, $full:literal, $weight:literal, $name:literal;)+) => {
        [$(Procedure { code: $code, name: $name, department: $dept, working_days: $days, fee: $fee, full_online: $full, weight: $weight }),+]
    };
}

pub const PROCEDURES: [Procedure; 48] = procedures![
    "2.000815", "STP", Some(0), true, true, 24.0, "Chứng thực bản sao từ bản chính giấy tờ, văn bản";
    "2.000884", "STP", Some(0), true, false, 7.0, "Chứng thực chữ ký trong các giấy tờ, văn bản";
    "2.000913", "STP", Some(2), true, false, 3.0, "Chứng thực hợp đồng, giao dịch liên quan đến tài sản là động sản, quyền sử dụng đất và nhà ở";
    "2.000927", "STP", Some(2), true, false, 0.6, "Chứng thực văn bản thỏa thuận phân chia di sản";
    "2.000942", "STP", Some(2), true, false, 0.4, "Chứng thực di chúc";
    "1.001193", "STP", Some(0), false, true, 9.0, "Đăng ký khai sinh";
    "1.000656", "STP", Some(0), false, true, 3.0, "Đăng ký khai tử";
    "1.000894", "STP", Some(1), false, false, 2.5, "Đăng ký kết hôn";
    "1.004884", "STP", Some(3), true, true, 5.5, "Cấp Giấy xác nhận tình trạng hôn nhân";
    "1.004746", "STP", Some(0), true, true, 6.0, "Cấp bản sao trích lục hộ tịch";
    "1.001022", "STP", Some(3), true, false, 0.8, "Đăng ký nhận cha, mẹ, con";
    "1.004859", "STP", Some(3), true, false, 1.6, "Đăng ký thay đổi, cải chính, bổ sung thông tin hộ tịch";
    "1.000689", "STP", Some(3), false, false, 0.3, "Đăng ký giám hộ";
    "1.003583", "STP", Some(5), false, true, 2.2, "Liên thông thủ tục hành chính về đăng ký khai sinh, đăng ký thường trú, cấp thẻ bảo hiểm y tế cho trẻ em dưới 6 tuổi";
    "1.001612", "STC", Some(3), true, true, 2.6, "Đăng ký thành lập hộ kinh doanh";
    "2.000720", "STC", Some(3), true, true, 1.8, "Đăng ký thay đổi nội dung đăng ký hộ kinh doanh";
    "2.000575", "STC", Some(3), false, true, 0.8, "Thông báo tạm ngừng kinh doanh, tiếp tục kinh doanh trước thời hạn đã thông báo của hộ kinh doanh";
    "2.000628", "STC", Some(3), false, true, 0.7, "Thông báo chấm dứt hoạt động hộ kinh doanh";
    "1.012345", "SNNMT", Some(10), true, false, 3.2, "Đăng ký biến động quyền sử dụng đất, quyền sở hữu tài sản gắn liền với đất";
    "1.012346", "SNNMT", Some(20), true, false, 1.4, "Đăng ký đất đai, tài sản gắn liền với đất, cấp Giấy chứng nhận quyền sử dụng đất lần đầu";
    "1.012350", "SNNMT", Some(7), true, false, 1.2, "Xóa đăng ký thế chấp quyền sử dụng đất, tài sản gắn liền với đất";
    "1.012351", "SNNMT", Some(3), true, false, 1.4, "Đăng ký thế chấp quyền sử dụng đất, tài sản gắn liền với đất";
    "2.001831", "SNNMT", Some(20), false, false, 0.3, "Hòa giải tranh chấp đất đai";
    "1.010731", "SNNMT", Some(10), false, true, 0.3, "Tiếp nhận kế hoạch bảo vệ môi trường";
    "1.008004", "SNNMT", Some(10), false, false, 0.4, "Hỗ trợ khôi phục sản xuất vùng bị thiệt hại do thiên tai, dịch bệnh";
    "1.009994", "SXD", Some(15), true, false, 2.4, "Cấp giấy phép xây dựng đối với công trình, nhà ở riêng lẻ";
    "1.009995", "SXD", Some(15), true, false, 0.6, "Cấp giấy phép sửa chữa, cải tạo đối với công trình, nhà ở riêng lẻ";
    "1.009996", "SXD", Some(5), true, false, 0.3, "Gia hạn giấy phép xây dựng đối với công trình, nhà ở riêng lẻ";
    "2.000286", "SNV", Some(7), false, false, 1.3, "Xác định, công nhận hộ nghèo, hộ cận nghèo phát sinh trong năm";
    "1.001776", "SNV", Some(15), false, false, 1.2, "Thực hiện, điều chỉnh, thôi hưởng trợ cấp xã hội hằng tháng";
    "1.001758", "SNV", Some(3), false, false, 0.5, "Hỗ trợ chi phí mai táng cho đối tượng bảo trợ xã hội";
    "1.001699", "SNV", Some(20), false, false, 0.6, "Xác định, xác định lại mức độ khuyết tật và cấp Giấy xác nhận khuyết tật";
    "1.010815", "SNV", Some(10), false, false, 0.4, "Giải quyết chế độ trợ cấp một lần đối với người có công với cách mạng";
    "1.000368", "SNV", Some(5), false, false, 0.3, "Xác nhận thông tin hồ sơ liệt sĩ, thân nhân liệt sĩ";
    "1.003054", "SYT", Some(7), true, true, 0.5, "Cấp Giấy xác nhận kiến thức về an toàn thực phẩm cho cơ sở kinh doanh dịch vụ ăn uống";
    "1.002234", "SYT", Some(5), false, false, 0.3, "Xác nhận đối tượng được hỗ trợ chi phí khám bệnh, chữa bệnh";
    "1.004440", "SGDDT", Some(3), false, true, 0.7, "Chuyển trường đối với học sinh tiểu học";
    "1.004492", "SGDDT", Some(20), false, false, 0.1, "Cho phép nhóm trẻ, lớp mẫu giáo độc lập hoạt động giáo dục";
    "1.000933", "SVHTTDL", Some(5), false, false, 0.3, "Xét tặng danh hiệu Gia đình văn hóa hằng năm";
    "1.003635", "SVHTTDL", Some(5), false, false, 0.1, "Thông báo tổ chức lễ hội cấp xã";
    "2.000633", "SCT", Some(10), true, true, 0.3, "Cấp Giấy phép bán lẻ sản phẩm thuốc lá";
    "2.000620", "SCT", Some(10), true, true, 0.3, "Cấp Giấy phép bán lẻ rượu";
    "1.001055", "SDTTG", Some(15), false, false, 0.1, "Đăng ký hoạt động tín ngưỡng";
    "1.001078", "SDTTG", Some(5), false, false, 0.1, "Thông báo danh mục hoạt động tôn giáo đối với tổ chức có địa bàn hoạt động tôn giáo ở một xã";
    "2.002192", "TTTP", Some(20), false, false, 0.2, "Giải quyết khiếu nại lần đầu tại cấp xã";
    "2.002195", "TTTP", None, false, false, 0.6, "Tiếp công dân tại cấp xã";
    "2.002196", "TTTP", None, false, false, 0.5, "Xử lý đơn kiến nghị, phản ánh tại cấp xã";
    "1.010943", "VPUB", Some(10), false, true, 0.2, "Cung cấp thông tin theo yêu cầu của công dân";
];

/// Writes the catalogue as CSV, one row per procedure with its department:
/// `procedure_code,procedure_name,department_code,department_name,department_name_en,working_days,fee_required,full_online`.
/// `working_days` is empty for procedures without a due date.
pub fn write_csv(mut out: impl std::io::Write) -> std::io::Result<()> {
    writeln!(
        out,
        "procedure_code,procedure_name,department_code,department_name,department_name_en,working_days,fee_required,full_online"
    )?;
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    for p in &PROCEDURES {
        let dept = department(p.department);
        writeln!(
            out,
            "{},{},{},{},{},{},{},{}",
            p.code,
            quote(p.name),
            p.department,
            quote(dept.map_or("", |d| d.name)),
            quote(dept.map_or("", |d| d.name_en)),
            p.working_days.map_or(String::new(), |d| d.to_string()),
            p.fee,
            p.full_online
        )?;
    }
    Ok(())
}

/// The department of a procedure.
pub fn department(code: &str) -> Option<&'static Department> {
    DEPARTMENTS.iter().find(|d| d.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn catalogue_is_consistent() {
        let codes: HashSet<_> = PROCEDURES.iter().map(|p| p.code).collect();
        assert_eq!(codes.len(), PROCEDURES.len(), "procedure codes are unique");
        for p in &PROCEDURES {
            assert!(department(p.department).is_some(), "{}", p.code);
            let (head, tail) = p.code.split_once('.').unwrap();
            assert!(matches!(head, "1" | "2") && tail.len() == 6, "{}", p.code);
        }
        let depts: HashSet<_> = DEPARTMENTS.iter().map(|d| d.code).collect();
        assert_eq!(depts.len(), 17);
    }
}
